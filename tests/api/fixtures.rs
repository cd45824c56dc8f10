//! Small documents written for these tests.

pub const WARRANTY_TXT: &str = "Acme Devices: terms of sale\n\n\
The warranty period for all Acme devices is 24 months from the date of purchase. \
It can be extended to 36 months by registering the device online within 30 days.\n\n\
Returns are accepted within 30 days when the device is undamaged and in its original packaging. \
Refunds are paid to the original means of payment within 14 days of receiving the return.\n\n\
Repairs outside the warranty period are charged at a flat fee of 89 euros plus parts.\n";

pub const ONBOARDING_MD: &str = "# Onboarding handbook\n\n\
## First day\n\n\
New employees collect their laptop from the IT desk on the second floor at nine o'clock. \
Badges are printed by the reception team.\n\n\
## Expenses\n\n\
Travel expenses are reimbursed within **two weeks** after the receipts are uploaded to the [expense portal](https://example.com).\n\n\
```\nexample code block\n```\n";

pub const GARDENING_TXT: &str = "Growing tomatoes on a balcony\n\n\
Tomatoes need at least six hours of direct sunlight every day. \
Water the plants deeply twice a week and feed them with a potassium-rich fertiliser once the first flowers open.\n";

/// A text unlike any other fixture, with a marker word to find it by.
pub fn unique_text(marker: &str) -> String {
    format!(
        "Memo {marker}\n\nThe {marker} project reviews supplier contracts every quarter. \
         Each review of {marker} ends with a written summary for the board.\n"
    )
}

/// A one-page PDF whose page content stream is `content` (stored with the given
/// `/Filter`, if any), with a correct cross-reference table; `extra` objects
/// (numbered from 5) are appended as written.
pub fn pdf_with_content(content: &[u8], filter: Option<&str>, extra: &[Vec<u8>]) -> Vec<u8> {
    let filter = filter.map(|f| format!(" /Filter /{f}")).unwrap_or_default();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
            .to_vec(),
        [
            format!("<< /Length {}{filter} >>\nstream\n", content.len()).as_bytes(),
            content,
            b"\nendstream",
        ]
        .concat(),
    ];
    objects.extend(extra.iter().cloned());
    assemble(&objects)
}

/// A page that says `text` in Helvetica.
pub fn pdf_saying(text: &str) -> Vec<u8> {
    let escaped = text.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    pdf_with_content(
        format!("BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET").as_bytes(),
        None,
        &[],
    )
}

/// A PDF of several pages, each saying its text in Helvetica, wrapped at about
/// 80 characters a line.
pub fn pdf_with_pages(pages: &[&str]) -> Vec<u8> {
    let n = pages.len();
    let font = n + 3;
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n).map(|i| format!("{} 0 R", i + 3)).collect::<Vec<_>>().join(" ")
        )
        .into_bytes(),
    ];
    for i in 0..n {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R \
                 /Resources << /Font << /F1 {font} 0 R >> >> >>",
                font + 1 + i
            )
            .into_bytes(),
        );
    }
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    for text in pages {
        let mut lines = vec![String::new()];
        for word in text.split_whitespace() {
            let line = lines.last_mut().unwrap();
            if line.len() + word.len() > 80 {
                lines.push(word.to_string());
            } else {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
        }
        let shown: String = lines
            .iter()
            .map(|l| {
                format!(
                    "({}) Tj T* ",
                    l.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)")
                )
            })
            .collect();
        let content = format!("BT /F1 11 Tf 14 TL 72 720 Td {shown}ET");
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes());
    }
    assemble(&objects)
}

/// A PDF of these objects (numbered from 1, the first the catalog), with a
/// correct cross-reference table.
fn assemble(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend(body);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
