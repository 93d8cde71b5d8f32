use keta_domain::checkins::CourseDays;
use time::macros::{date, datetime};

use super::*;

#[test]
fn periodic_check_ins_keep_the_local_hour_across_daylight_saving() {
    let zone = crate::site_time::zone("America/Chicago");
    // Chicago leaves daylight saving on 1 Nov 2026: 09:00 is 14:00 UTC before, 15:00 after.
    let days = SiteCourseDays { zone: &zone, start: date!(2026 - 10 - 26), hour: 9 };
    assert_eq!(days.day(0), datetime!(2026-10-26 14:00 UTC));
    assert_eq!(days.day(7), datetime!(2026-11-02 15:00 UTC));
    assert_eq!(days.day(28), datetime!(2026-11-23 15:00 UTC));
}
