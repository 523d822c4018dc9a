//! A clinic's branding: the display name, accent colour and logo that its sign-in
//! pages, console and messages show instead of the platform's. Each part is parsed
//! here, once, from what an admin typed or uploaded.
//!
//! - [`DisplayName`]: 1–80 characters after trimming, no control characters.
//! - [`AccentColor`]: `#rrggbb`, dark enough for white text on it (WCAG 2 contrast
//!   of at least 4.5:1), because buttons carry white text on the accent and links
//!   are the accent on white.
//! - [`LogoImage`]: a PNG, JPEG or WebP image recognised by its first bytes (never
//!   SVG, which can carry scripts), at most [`LOGO_MAX_BYTES`] and
//!   [`LOGO_MAX_SIDE`]×[`LOGO_MAX_SIDE`] pixels (read from the image's header).

use std::fmt;

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 80;
/// Largest logo file accepted: 256 KiB.
pub const LOGO_MAX_BYTES: usize = 256 * 1024;
/// Widest and tallest logo accepted, in pixels.
pub const LOGO_MAX_SIDE: usize = 1024;
/// Least contrast between white text and the accent colour (WCAG 2, AA, normal text).
pub const MIN_CONTRAST_WITH_WHITE: f64 = 4.5;

/// Why a display name or colour was refused. The words are shown to the admin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrandingError {
    #[error("Enter a display name (up to 80 characters).")]
    EmptyName,
    #[error("The display name is too long: at most 80 characters.")]
    NameTooLong,
    #[error("The display name cannot contain line breaks or control characters.")]
    NameControl,
    #[error("Enter the accent colour as # and six hex digits, like #1f5fbf.")]
    ColorFormat,
    #[error(
        "The accent colour {hex} is too light: white text on it has a contrast of {ratio:.2}:1, and at least \
         4.5:1 is needed so that buttons and links stay readable. Choose a darker colour."
    )]
    ColorTooLight { hex: String, ratio: f64 },
}

/// The name a clinic's pages and messages show, e.g. "Riverside Family Clinic".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<DisplayName, BrandingError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(BrandingError::EmptyName);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(BrandingError::NameControl);
        }
        if trimmed.chars().count() > DISPLAY_NAME_MAX_CHARS {
            return Err(BrandingError::NameTooLong);
        }
        Ok(DisplayName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The clinic's accent colour (buttons, links), always dark enough for white text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccentColor([u8; 3]);

impl AccentColor {
    /// `#rrggbb` (either case); refused when white text on it is below 4.5:1.
    pub fn parse(s: &str) -> Result<AccentColor, BrandingError> {
        let rgb = parse_hex(s.trim()).ok_or(BrandingError::ColorFormat)?;
        let color = AccentColor(rgb);
        let ratio = color.contrast_with_white();
        if ratio < MIN_CONTRAST_WITH_WHITE {
            return Err(BrandingError::ColorTooLight { hex: color.hex(), ratio: (ratio * 100.0).floor() / 100.0 });
        }
        Ok(color)
    }

    /// `#rrggbb`, lowercase.
    pub fn hex(&self) -> String {
        let [r, g, b] = self.0;
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// WCAG 2 contrast ratio of white against this colour (1 to 21).
    pub fn contrast_with_white(&self) -> f64 {
        contrast_ratio(1.0, relative_luminance(self.0))
    }
}

impl fmt::Display for AccentColor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// The small stylesheet that gives a clinic's pages its accent: the base stylesheet
/// colours buttons, links and the clinic's header with `--accent`. Only a parsed
/// colour goes in, so nothing else can.
pub fn theme_css(accent: &AccentColor) -> String {
    format!(":root {{ --accent: {}; }}\n", accent.hex())
}

fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let digits = s.strip_prefix('#')?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| digits.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok());
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// WCAG 2 relative luminance of an sRGB colour (0 black to 1 white).
pub fn relative_luminance(rgb: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let [r, g, b] = rgb;
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// WCAG 2 contrast ratio of two relative luminances.
pub fn contrast_ratio(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

/// The image formats a logo may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoFormat {
    Png,
    Jpeg,
    Webp,
}

impl LogoFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            LogoFormat::Png => "image/png",
            LogoFormat::Jpeg => "image/jpeg",
            LogoFormat::Webp => "image/webp",
        }
    }

    /// The format a `Content-Type` names (parameters ignored), if it is one of ours.
    pub fn from_content_type(s: &str) -> Option<LogoFormat> {
        let essence = s.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/png" => Some(LogoFormat::Png),
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(LogoFormat::Jpeg),
            "image/webp" => Some(LogoFormat::Webp),
            _ => None,
        }
    }

    /// The format the file's first bytes say it is.
    fn sniff(bytes: &[u8]) -> Option<LogoFormat> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(LogoFormat::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(LogoFormat::Jpeg)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
            Some(LogoFormat::Webp)
        } else {
            None
        }
    }
}

/// Why an uploaded logo was refused. The words are shown to the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("Choose an image file to upload.")]
    Empty,
    #[error("The logo is larger than 256 KiB. Upload a smaller PNG, JPEG or WebP image.")]
    TooLarge,
    #[error("SVG logos are not accepted (an SVG file can carry scripts). Upload a PNG, JPEG or WebP image.")]
    Svg,
    #[error("The file is not a PNG, JPEG or WebP image.")]
    UnknownFormat,
    #[error("The file says it is {declared} but its content is {actual}. Upload the image as it is.")]
    TypeMismatch { declared: String, actual: &'static str },
    #[error("The image's size could not be read: the file may be damaged.")]
    Unreadable,
    #[error("The logo is {width}×{height} pixels; at most 1024×1024 pixels are accepted.")]
    TooManyPixels { width: usize, height: usize },
}

/// A logo that passed every check: its format (from its bytes), size and content.
#[derive(Clone, PartialEq, Eq)]
pub struct LogoImage {
    format: LogoFormat,
    width: usize,
    height: usize,
    bytes: Vec<u8>,
}

impl fmt::Debug for LogoImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoImage")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl LogoImage {
    /// Checks an uploaded file. `declared` is the type the upload said it was (a
    /// `Content-Type`); `None` or `application/octet-stream` leave it to the bytes.
    pub fn parse(bytes: Vec<u8>, declared: Option<&str>) -> Result<LogoImage, LogoError> {
        if bytes.is_empty() {
            return Err(LogoError::Empty);
        }
        if bytes.len() > LOGO_MAX_BYTES {
            return Err(LogoError::TooLarge);
        }
        let declared = declared.map(str::trim).filter(|d| !d.is_empty());
        let declared_svg = declared.is_some_and(|d| d.to_ascii_lowercase().starts_with("image/svg"));
        if declared_svg || looks_like_markup(&bytes) {
            return Err(LogoError::Svg);
        }
        let format = LogoFormat::sniff(&bytes).ok_or(LogoError::UnknownFormat)?;
        if let Some(d) = declared
            && !d.to_ascii_lowercase().starts_with("application/octet-stream")
            && LogoFormat::from_content_type(d) != Some(format)
        {
            let shown: String = d.chars().filter(|c| !c.is_control()).take(40).collect();
            return Err(LogoError::TypeMismatch { declared: shown, actual: format.content_type() });
        }
        let size = imagesize::blob_size(&bytes).map_err(|_| LogoError::Unreadable)?;
        let (width, height) = (size.width, size.height);
        if width == 0 || height == 0 {
            return Err(LogoError::Unreadable);
        }
        if width > LOGO_MAX_SIDE || height > LOGO_MAX_SIDE {
            return Err(LogoError::TooManyPixels { width, height });
        }
        Ok(LogoImage { format, width, height, bytes })
    }

    pub fn format(&self) -> LogoFormat {
        self.format
    }
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Text that starts like XML or HTML (an SVG file, however it is named).
fn looks_like_markup(bytes: &[u8]) -> bool {
    let start = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    start.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// What a change to the branding changed, for the audit trail (never the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrandingChange {
    pub display_name: bool,
    pub accent_color: bool,
    pub logo: bool,
}

impl BrandingChange {
    pub fn is_empty(&self) -> bool {
        !(self.display_name || self.accent_color || self.logo)
    }

    /// `display_name,accent_color,logo`: the parts that changed, in that order.
    pub fn parts(&self) -> String {
        [(self.display_name, "display_name"), (self.accent_color, "accent_color"), (self.logo, "logo")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG header (signature and IHDR) of the given size; enough for the checks.
    pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Riverside Clinic ").map(|n| n.to_string()), Ok("Riverside Clinic".into()));
        assert_eq!(DisplayName::parse("   "), Err(BrandingError::EmptyName));
        assert_eq!(DisplayName::parse("a\nb"), Err(BrandingError::NameControl));
        assert_eq!(DisplayName::parse(&"é".repeat(80)).map(|n| n.as_str().chars().count()), Ok(80));
        assert_eq!(DisplayName::parse(&"é".repeat(81)), Err(BrandingError::NameTooLong));
    }

    #[test]
    fn accent_colors_must_be_hex_and_dark_enough_for_white_text() {
        assert_eq!(AccentColor::parse("#1F5FBF").map(|c| c.hex()), Ok("#1f5fbf".into()));
        assert_eq!(AccentColor::parse("1f5fbf"), Err(BrandingError::ColorFormat));
        assert_eq!(AccentColor::parse("#fff"), Err(BrandingError::ColorFormat));
        assert_eq!(AccentColor::parse("#12345g"), Err(BrandingError::ColorFormat));
        assert_eq!(AccentColor::parse("red"), Err(BrandingError::ColorFormat));
        // #767676 is the classic lightest grey for 4.5:1 on white; #777777 falls short.
        assert!(AccentColor::parse("#767676").is_ok());
        let err = AccentColor::parse("#777777").unwrap_err();
        assert!(matches!(err, BrandingError::ColorTooLight { .. }), "{err:?}");
        assert!(err.to_string().contains("4.5:1") && err.to_string().contains("#777777"), "{err}");
        assert!(AccentColor::parse("#ffcc00").is_err());
        assert!(AccentColor::parse("#000000").is_ok());
    }

    #[test]
    fn wcag_luminance_and_contrast_match_known_values() {
        assert!((relative_luminance([255, 255, 255]) - 1.0).abs() < 1e-9);
        assert!(relative_luminance([0, 0, 0]).abs() < 1e-9);
        assert!((contrast_ratio(1.0, 0.0) - 21.0).abs() < 1e-9);
        // #1f5fbf (the platform's accent) against white: about 6.09:1.
        let ratio = AccentColor([0x1f, 0x5f, 0xbf]).contrast_with_white();
        assert!((6.08..6.10).contains(&ratio), "{ratio}");
    }

    #[test]
    fn logos_are_recognised_by_their_bytes() {
        let ok = LogoImage::parse(png(200, 80), Some("image/png")).unwrap();
        assert_eq!((ok.format(), ok.width(), ok.height()), (LogoFormat::Png, 200, 80));
        assert!(LogoImage::parse(png(200, 80), None).is_ok());
        assert!(LogoImage::parse(png(200, 80), Some("application/octet-stream")).is_ok());
        assert_eq!(LogoImage::parse(Vec::new(), None), Err(LogoError::Empty));
        assert_eq!(LogoImage::parse(b"GIF89a\x01\x00\x01\x00".to_vec(), None), Err(LogoError::UnknownFormat));
        assert!(matches!(
            LogoImage::parse(png(10, 10), Some("image/jpeg")),
            Err(LogoError::TypeMismatch { actual: "image/png", .. })
        ));
    }

    #[test]
    fn svg_is_never_a_logo() {
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert_eq!(LogoImage::parse(svg.to_vec(), Some("image/png")), Err(LogoError::Svg));
        assert_eq!(LogoImage::parse(b"\xef\xbb\xbf  <svg/>".to_vec(), None), Err(LogoError::Svg));
        assert_eq!(LogoImage::parse(png(10, 10), Some("image/svg+xml")), Err(LogoError::Svg));
    }

    #[test]
    fn logos_are_bounded_in_bytes_and_pixels() {
        assert!(LogoImage::parse(png(1024, 1024), None).is_ok());
        assert_eq!(LogoImage::parse(png(1025, 10), None), Err(LogoError::TooManyPixels { width: 1025, height: 10 }));
        assert_eq!(LogoImage::parse(png(10, 4000), None), Err(LogoError::TooManyPixels { width: 10, height: 4000 }));
        let mut big = png(10, 10);
        big.resize(LOGO_MAX_BYTES, 0);
        assert!(LogoImage::parse(big.clone(), None).is_ok());
        big.push(0);
        assert_eq!(LogoImage::parse(big, None), Err(LogoError::TooLarge));
        assert_eq!(LogoImage::parse(png(0, 10), None), Err(LogoError::Unreadable));
    }

    #[test]
    fn the_theme_sets_the_accent_property() {
        let c = AccentColor::parse("#0B5D3B").unwrap();
        assert_eq!(theme_css(&c), ":root { --accent: #0b5d3b; }\n");
    }

    #[test]
    fn a_change_names_its_parts() {
        let c = BrandingChange { display_name: true, accent_color: false, logo: true };
        assert_eq!(c.parts(), "display_name,logo");
        assert!(BrandingChange::default().is_empty());
    }
}
