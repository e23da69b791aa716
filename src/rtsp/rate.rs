//! The Scale (RFC 2326 §12.34) and Speed (RFC 2326 §12.35) headers of
//! PLAY. There is no trick play: every stream plays at normal rate, and
//! the response says so, as both sections require of a server that
//! cannot honour the requested value.

use rtsp_types::{headers, HeaderName, Request};

/// The Scale or Speed a PLAY response carries: the rate actually used.
pub const PLAYED_RATE: &str = "1";

/// A Scale or Speed header whose value is not a number of its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header} {value}")]
pub struct MalformedRate {
    /// `Scale` or `Speed`.
    pub header: HeaderName,
    /// The value as sent.
    pub value: String,
}

/// Parses one rate header's value; `None` if malformed.
type RateParser = fn(&str) -> Option<f64>;

/// The rate headers of a PLAY request (Scale, Speed) its response must
/// carry with [`PLAYED_RATE`]: each one the request has.
///
/// # Errors
///
/// [`MalformedRate`] for the first header that does not parse (answered
/// 400 Bad Request).
pub fn headers_to_answer(request: &Request<Vec<u8>>) -> Result<Vec<HeaderName>, MalformedRate> {
    let parsers: [(HeaderName, RateParser); 2] =
        [(headers::SCALE, parse_scale), (headers::SPEED, parse_speed)];
    let mut answer = Vec::new();
    for (header, parse) in parsers {
        let Some(value) = request.header(&header) else {
            continue;
        };
        let Some(requested) = parse(value.as_str()) else {
            return Err(MalformedRate {
                header,
                value: value.as_str().to_string(),
            });
        };
        if requested != 1.0 {
            tracing::debug!(%header, requested, "no trick play: playing at normal rate");
        }
        answer.push(header);
    }
    Ok(answer)
}

/// Parses a Scale value: a decimal number, negative for reverse play
/// (`[ "-" ] 1*DIGIT [ "." *DIGIT ]`); `None` if malformed.
pub fn parse_scale(value: &str) -> Option<f64> {
    let value = value.trim();
    match value.strip_prefix('-') {
        Some(magnitude) => parse_decimal(magnitude).map(|m| -m),
        None => parse_decimal(value),
    }
}

/// Parses a Speed value: a positive decimal number (`1*DIGIT [ "." *DIGIT ]`);
/// `None` if malformed.
pub fn parse_speed(value: &str) -> Option<f64> {
    parse_decimal(value.trim())
}

/// `1*DIGIT [ "." *DIGIT ]`: digits only, so no sign, exponent, `inf` or
/// `NaN` that `f64::from_str` would take.
fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_of_rfc_2326_parse() {
        assert_eq!(parse_scale("1"), Some(1.0));
        assert_eq!(parse_scale("2.0"), Some(2.0));
        assert_eq!(parse_scale("-1.0"), Some(-1.0));
        assert_eq!(parse_scale(" 0.5 "), Some(0.5));
        assert_eq!(parse_scale("4."), Some(4.0));
        for bad in ["", "-", "+2", "1e3", "inf", "NaN", ".5", "2,0", "--1", "x"] {
            assert_eq!(parse_scale(bad), None, "{bad:?}");
        }
    }

    fn play(headers: &[(HeaderName, &str)]) -> Request<Vec<u8>> {
        let mut builder = Request::builder(rtsp_types::Method::Play, rtsp_types::Version::V1_0);
        for (name, value) in headers {
            builder = builder.header(name.clone(), *value);
        }
        builder.build(Vec::new())
    }

    #[test]
    fn every_rate_header_sent_is_answered() {
        assert_eq!(headers_to_answer(&play(&[])), Ok(vec![]));
        assert_eq!(
            headers_to_answer(&play(&[(headers::SCALE, "-1.0")])),
            Ok(vec![headers::SCALE])
        );
        assert_eq!(
            headers_to_answer(&play(&[(headers::SPEED, "2.0"), (headers::SCALE, "2")])),
            Ok(vec![headers::SCALE, headers::SPEED])
        );
        assert_eq!(
            headers_to_answer(&play(&[(headers::SCALE, "1"), (headers::SPEED, "-2")])),
            Err(MalformedRate {
                header: headers::SPEED,
                value: "-2".to_string()
            })
        );
    }

    #[test]
    fn speeds_are_positive_decimals() {
        assert_eq!(parse_speed("2.5"), Some(2.5));
        assert_eq!(parse_speed("1"), Some(1.0));
        for bad in ["-1", "", "fast", "1.5.2"] {
            assert_eq!(parse_speed(bad), None, "{bad:?}");
        }
    }
}
