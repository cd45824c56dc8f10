//! Where a webhook may point: http(s) URLs whose host does not resolve to the
//! server's own network (loopback, private, link-local, CGNAT, unique-local,
//! unspecified, multicast), unless `WEBHOOK_ALLOW_PRIVATE` says it may. Checked
//! when the webhook is made and again before each delivery (a name can be
//! pointed elsewhere after it was checked).

use std::net::IpAddr;

use reqwest::Url;

/// The URL, parsed and checked, or why not.
pub async fn check(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url: http or https only, not {}", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url: no credentials in the URL; the secret signs each delivery".into());
    }
    let host = url.host_str().ok_or("url: no host")?.to_string();
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("url: {host} does not resolve ({e})"))?
        .map(|socket| socket.ip())
        .collect();
    if addresses.is_empty() {
        return Err(format!("url: {host} does not resolve"));
    }
    if let Some(inside) = addresses.iter().find(|ip| is_internal(**ip)) {
        return Err(format!(
            "url: {host} resolves to {inside}, an address of the server's own network \
             (WEBHOOK_ALLOW_PRIVATE=true allows it)"
        ));
    }
    Ok(url)
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (a == 100 && (64..128).contains(&b))
                // 0.0.0.0/8
                || a == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link local
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_servers_own_network_is_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/hook",
            "http://[fd00::1]/hook",
            "http://100.64.0.1/hook",
            "http://0.0.0.0/hook",
        ] {
            assert!(check(url, false).await.is_err(), "{url}");
            assert!(check(url, true).await.is_ok(), "{url}");
        }
        assert!(check("http://8.8.8.8/hook", false).await.is_ok());
        assert!(check("ftp://example.com/", true).await.is_err());
        assert!(check("https://user:pw@example.com/", true).await.is_err());
        assert!(check("not a url", true).await.is_err());
    }
}
