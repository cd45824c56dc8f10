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
