//! The Range header of PLAY (RFC 2326 §12.29) in normal play time
//! (RFC 2326 §3.6), the one unit an on-demand file has.

/// The times of an npt Range, in seconds from the start of the
/// presentation; `None` where the range is open (or `now`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NptRange {
    /// Where playback starts; `None`: where it is now.
    pub start: Option<f64>,
    /// Where playback stops; `None`: at the end.
    pub end: Option<f64>,
}

/// Parses a Range header value; `None` if it is not a forward npt range.
/// The unit and `now` are keywords, matched case-insensitively
/// (`NPT=0-`); a `;time=` parameter (when to start) is ignored.
pub fn parse_npt_range(value: &str) -> Option<NptRange> {
    let spec = value.split(';').next()?;
    let (unit, times) = spec.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("npt") {
        return None;
    }
    let (start, end) = times.trim().split_once('-')?;
    let end = end.trim();
    if end.eq_ignore_ascii_case("now") {
        return None;
    }
    let range = NptRange {
        start: parse_npt_time(start.trim())?,
        end: parse_npt_time(end)?,
    };
    match range {
        NptRange {
            start: Some(start),
            end: Some(end),
        } if end <= start => None,
        range => Some(range),
    }
}

/// One npt time: seconds or h:m:s with fractions; empty or `now` is open.
fn parse_npt_time(text: &str) -> Option<Option<f64>> {
    if text.is_empty() || text.eq_ignore_ascii_case("now") {
        return Some(None);
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    let mut secs = 0.0;
    for part in &parts {
        let value: f64 = part.parse().ok()?;
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        secs = secs * 60.0 + value;
    }
    Some(Some(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: Option<f64>, end: Option<f64>) -> Option<NptRange> {
        Some(NptRange { start, end })
    }

    /// Examples of RFC 2326 §3.6 and §12.29, and what clients send.
    #[test]
    fn npt_ranges_parse() {
        assert_eq!(parse_npt_range("npt=5-"), range(Some(5.0), None));
        assert_eq!(
            parse_npt_range("npt=5.25-10"),
            range(Some(5.25), Some(10.0))
        );
        assert_eq!(parse_npt_range("npt = 0:01:02.5-"), range(Some(62.5), None));
        assert_eq!(parse_npt_range("npt=now-"), range(None, None));
        assert_eq!(parse_npt_range("npt=-"), range(None, None));
        assert_eq!(parse_npt_range("npt=-4"), range(None, Some(4.0)));
        assert_eq!(
            parse_npt_range("npt=0.000-12.000;time=19970123T153600Z"),
            range(Some(0.0), Some(12.0))
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse_npt_range("NPT=0-"), range(Some(0.0), None));
        assert_eq!(parse_npt_range("Npt=1.5-3"), range(Some(1.5), Some(3.0)));
        assert_eq!(parse_npt_range("npt=NOW-"), range(None, None));
        assert_eq!(parse_npt_range("NPT=5-Now"), None, "an end of now");
    }

    #[test]
    fn other_units_and_bad_times_are_refused() {
        assert_eq!(parse_npt_range("clock=19961108T142300Z-"), None);
        assert_eq!(parse_npt_range("SMPTE=10:07:00-10:07:33:05.01"), None);
        assert_eq!(parse_npt_range("bytes=1-"), None);
        assert_eq!(parse_npt_range("npt=-3-"), None);
        assert_eq!(parse_npt_range("npt=5-2"), None, "backwards");
        assert_eq!(parse_npt_range("npt=5-5"), None, "empty");
        assert_eq!(parse_npt_range("npt=5-now"), None);
        assert_eq!(parse_npt_range("npt=abc-"), None);
        assert_eq!(parse_npt_range("npt=NaN-"), None);
        assert_eq!(parse_npt_range("npt=1e309-"), None, "infinite");
        assert_eq!(parse_npt_range("npt=1:2:3:4-"), None);
        assert_eq!(parse_npt_range("npt 5-"), None);
    }
}
