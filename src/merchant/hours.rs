//! Business hours: a weekly schedule in the merchant's time zone. Outside it the team counts
//! as away (visitors get the leave-a-message form) and the out-of-hours message replaces the
//! offline notice.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::http::AppError;

/// Opening hours of one stretch, `HH:MM` to `HH:MM` (`24:00` ends at midnight).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    pub enabled: bool,
    /// An IANA time zone, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// Monday first, seven days; a day without intervals is closed.
    pub days: Vec<Vec<Interval>>,
    /// Sent instead of the offline notice outside the hours (empty: the offline notice).
    #[serde(default)]
    pub out_of_hours_message: String,
}

impl Default for BusinessHours {
    fn default() -> Self {
        let nine_to_six = || vec![Interval { from: "09:00".into(), to: "18:00".into() }];
        Self {
            enabled: false,
            time_zone: "Asia/Shanghai".into(),
            days: (0..7).map(|d| if d < 5 { nine_to_six() } else { Vec::new() }).collect(),
            out_of_hours_message: String::new(),
        }
    }
}

/// Minutes since midnight of `HH:MM` (00:00–24:00).
fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl BusinessHours {
    /// Checks the schedule: a known time zone, seven days, at most four ordered stretches a
    /// day, each `from` before its `to`.
    pub fn validate(&self) -> Result<(), AppError> {
        let field = "business_hours";
        if self.time_zone.parse::<Tz>().is_err() {
            return Err(AppError::field(
                field,
                "time_zone is not a known time zone (like Asia/Shanghai)",
            ));
        }
        if self.days.len() != 7 {
            return Err(AppError::field(field, "days lists seven days, Monday first"));
        }
        for day in &self.days {
            if day.len() > 4 {
                return Err(AppError::field(field, "at most four stretches a day"));
            }
            let mut last_end = 0;
            for i in day {
                let (Some(from), Some(to)) = (minutes(&i.from), minutes(&i.to)) else {
                    return Err(AppError::field(field, "times are HH:MM, from 00:00 to 24:00"));
                };
                if from >= to || from < last_end {
                    return Err(AppError::field(
                        field,
                        "each stretch starts before it ends, in order",
                    ));
                }
                last_end = to;
            }
        }
        if self.out_of_hours_message.chars().count() > 1000 {
            return Err(AppError::field(
                field,
                "the out-of-hours message is at most 1000 characters",
            ));
        }
        Ok(())
    }

    /// Whether `now` falls in the schedule (always, when it is switched off).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        if !self.enabled {
            return true;
        }
        let Ok(tz) = self.time_zone.parse::<Tz>() else { return true };
        let local = now.with_timezone(&tz);
        let minute = local.hour() * 60 + local.minute();
        let day = local.weekday().num_days_from_monday() as usize;
        self.days.get(day).is_some_and(|stretches| {
            stretches.iter().any(|i| {
                matches!((minutes(&i.from), minutes(&i.to)), (Some(f), Some(t)) if f <= minute && minute < t)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn on() -> BusinessHours {
        BusinessHours { enabled: true, ..BusinessHours::default() }
    }

    #[test]
    fn open_in_the_merchants_time_zone() {
        let h = on();
        // Monday 2026-11-23 01:30 UTC is 09:30 in Shanghai: open.
        assert!(h.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 1, 30, 0).unwrap()));
        // 00:59 UTC is 08:59 there: not yet.
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 0, 59, 0).unwrap()));
        // 10:00 UTC is 18:00: closed (the end is exclusive).
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()));
        // Saturday 2026-11-28 03:00 UTC (11:00 local): weekend, closed.
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()));
        // Friday 2026-11-27 20:00 UTC is already Saturday 04:00 in Shanghai.
        assert!(!h.is_open(Utc.with_ymd_and_hms(2026, 11, 27, 20, 0, 0).unwrap()));
        assert!(
            BusinessHours::default().is_open(Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()),
            "switched off: always open"
        );
    }

    #[test]
    fn until_midnight_and_validation() {
        let mut h = on();
        h.days[0] = vec![Interval { from: "20:00".into(), to: "24:00".into() }];
        assert!(h.validate().is_ok());
        // Monday 15:59 UTC = 23:59 local.
        assert!(h.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 15, 59, 0).unwrap()));
        for bad in [
            BusinessHours { time_zone: "Mars/Olympus".into(), ..on() },
            BusinessHours { days: vec![vec![]; 6], ..on() },
            BusinessHours {
                days: {
                    let mut d = on().days;
                    d[2] = vec![Interval { from: "18:00".into(), to: "09:00".into() }];
                    d
                },
                ..on()
            },
            BusinessHours {
                days: {
                    let mut d = on().days;
                    d[2] = vec![Interval { from: "9:00".into(), to: "18:00".into() }];
                    d
                },
                ..on()
            },
            BusinessHours {
                days: {
                    let mut d = on().days;
                    d[2] = vec![Interval { from: "09:00".into(), to: "24:30".into() }];
                    d
                },
                ..on()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
