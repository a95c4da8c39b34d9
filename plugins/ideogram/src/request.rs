//! OpenAI `images/generations` bodies read into one [`ImageRequest`], then written as
//! Ideogram 3.0's multipart form or the legacy `/generate` JSON.
//!
//! What maps where:
//! - `prompt` -> `prompt`; `n` -> `num_images` (1 to [`MAX_IMAGES`]).
//! - `size` (`WxH`) -> the nearest aspect ratio the model has (by log ratio, so
//!   1792x1024 is 16x9 and 1536x1024 is 3x2); `"auto"` leaves it to Ideogram. Ideogram's
//!   own `aspect_ratio` (`16x9`, `16:9` or `ASPECT_16_9`) and, on 3.0, `resolution`
//!   (one of [`RESOLUTIONS`]) win over `size`.
//! - `quality` -> 3.0's `rendering_speed` (`low` TURBO, `standard`/`medium` DEFAULT,
//!   `hd`/`high` QUALITY, `auto` unset); Ideogram's `rendering_speed` wins; the
//!   `ideogram-v3-<speed>` models fix it. Legacy models have no rendering speed (their
//!   `_TURBO` variants are the fast ones), so `quality` is accepted and ignored there.
//! - `style` -> `style_type` (`natural` REALISTIC, `vivid` unset); Ideogram's
//!   `style_type` wins.
//! - `response_format`: only `url`. Ideogram answers with links and a plugin cannot
//!   fetch them, so `b64_json` is refused rather than answered in another shape.
//! - Passed on when given: `negative_prompt`, `seed`, `magic_prompt` (or the legacy
//!   name `magic_prompt_option`; `true`/`false` mean ON/OFF).
//!
//! Other OpenAI fields (`user`, `background`, `output_format`, ...) have no Ideogram
//! counterpart and are ignored, as OpenAI ignores what a model does not use.

use plugin_api::serde_json::{json, Map, Value};
use plugin_api::ProviderError;

/// The 3.0 models: one name per fixed rendering speed, and one that takes the client's.
pub const V3_MODELS: &[(&str, Option<&str>)] = &[
    ("ideogram-v3", None),
    ("ideogram-v3-flash", Some("FLASH")),
    ("ideogram-v3-turbo", Some("TURBO")),
    ("ideogram-v3-quality", Some("QUALITY")),
];

/// The models of the legacy `/generate` endpoint, named as Ideogram names them.
pub const LEGACY_MODELS: &[&str] = &["V_2", "V_2_TURBO", "V_2A", "V_2A_TURBO", "V_1", "V_1_TURBO"];

/// Ideogram's limit of images per request.
pub const MAX_IMAGES: u64 = 8;

/// Ideogram's seeds are non-negative 32-bit integers.
const MAX_SEED: i64 = 2_147_483_647;

const V3_RATIOS: &[(u32, u32)] = &[
    (1, 3),
    (3, 1),
    (1, 2),
    (2, 1),
    (9, 16),
    (16, 9),
    (10, 16),
    (16, 10),
    (2, 3),
    (3, 2),
    (3, 4),
    (4, 3),
    (4, 5),
    (5, 4),
    (1, 1),
];

const LEGACY_RATIOS: &[(u32, u32)] = &[
    (1, 1),
    (16, 9),
    (9, 16),
    (4, 3),
    (3, 4),
    (3, 2),
    (2, 3),
    (16, 10),
    (10, 16),
    (3, 1),
    (1, 3),
];

/// The output resolutions Ideogram 3.0 accepts.
pub const RESOLUTIONS: &[&str] = &[
    "512x1536",
    "576x1408",
    "576x1472",
    "576x1536",
    "640x1344",
    "640x1408",
    "640x1472",
    "640x1536",
    "704x1152",
    "704x1216",
    "704x1280",
    "704x1344",
    "704x1408",
    "704x1472",
    "736x1312",
    "768x1088",
    "768x1216",
    "768x1280",
    "768x1344",
    "800x1280",
    "832x960",
    "832x1024",
    "832x1088",
    "832x1152",
    "832x1216",
    "832x1248",
    "864x1152",
    "896x960",
    "896x1024",
    "896x1088",
    "896x1120",
    "896x1152",
    "960x832",
    "960x896",
    "960x1024",
    "960x1088",
    "1024x832",
    "1024x896",
    "1024x960",
    "1024x1024",
    "1088x768",
    "1088x832",
    "1088x896",
    "1088x960",
    "1120x896",
    "1152x704",
    "1152x832",
    "1152x864",
    "1152x896",
    "1216x704",
    "1216x768",
    "1216x832",
    "1248x832",
    "1280x704",
    "1280x768",
    "1280x800",
    "1312x736",
    "1344x640",
    "1344x704",
    "1344x768",
    "1408x576",
    "1408x640",
    "1408x704",
    "1472x576",
    "1472x640",
    "1472x704",
    "1536x512",
    "1536x576",
    "1536x640",
];

const SPEEDS: &[&str] = &["FLASH", "TURBO", "DEFAULT", "QUALITY"];
const V3_STYLES: &[&str] = &["AUTO", "GENERAL", "REALISTIC", "DESIGN", "FICTION"];
const LEGACY_STYLES: &[&str] = &[
    "AUTO",
    "GENERAL",
    "REALISTIC",
    "DESIGN",
    "RENDER_3D",
    "ANIME",
];
const MAGIC: &[&str] = &["AUTO", "ON", "OFF"];

/// Which Ideogram API a model is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/ideogram-v3/generate` (multipart), with the speed the model fixes.
    V3 { speed: Option<&'static str> },
    /// `POST /generate` (JSON) with this `model`.
    Legacy { model: &'static str },
}

impl Api {
    /// The API of a model name (case-insensitive); unknown names are the client's error.
    pub fn of(model: &str) -> Result<Api, ProviderError> {
        let m = model.trim();
        if m.eq_ignore_ascii_case("V_3") {
            return Ok(Api::V3 { speed: None });
        }
        if let Some((_, speed)) = V3_MODELS.iter().find(|(id, _)| id.eq_ignore_ascii_case(m)) {
            return Ok(Api::V3 { speed: *speed });
        }
        if let Some(id) = LEGACY_MODELS.iter().find(|id| id.eq_ignore_ascii_case(m)) {
            return Ok(Api::Legacy { model: id });
        }
        let known: Vec<&str> = V3_MODELS
            .iter()
            .map(|(id, _)| *id)
            .chain(LEGACY_MODELS.iter().copied())
            .collect();
        Err(ProviderError::bad_request(format!(
            "{m:?} is not an Ideogram model; use one of {}",
            known.join(", ")
        )))
    }

    fn ratios(self) -> &'static [(u32, u32)] {
        match self {
            Api::V3 { .. } => V3_RATIOS,
            Api::Legacy { .. } => LEGACY_RATIOS,
        }
    }
}

/// An image request, read and checked, in Ideogram's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRequest {
    pub prompt: String,
    pub num_images: Option<u64>,
    pub aspect_ratio: Option<(u32, u32)>,
    pub resolution: Option<String>,
    pub rendering_speed: Option<&'static str>,
    pub style_type: Option<String>,
    pub magic_prompt: Option<&'static str>,
    pub negative_prompt: Option<String>,
    pub seed: Option<i64>,
}

fn bad(msg: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(msg)
}

/// A field that is absent or JSON `null`.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn string<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ProviderError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(format!("'{name}' must be a string"))),
    }
}

/// One of `allowed`, case-insensitive, as Ideogram spells it.
fn one_of(
    name: &str,
    value: &str,
    allowed: &[&'static str],
) -> Result<&'static str, ProviderError> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value.trim()))
        .copied()
        .ok_or_else(|| {
            bad(format!(
                "'{name}' {value:?} is not supported by Ideogram; use one of {}",
                allowed.join(", ")
            ))
        })
}

/// `WxH` as two positive numbers.
fn dimensions(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// The ratio of `ratios` nearest to `w:h`, compared on a log scale so that a ratio and
/// its inverse are equally far from square.
fn nearest_ratio((w, h): (u32, u32), ratios: &[(u32, u32)]) -> (u32, u32) {
    let target = (f64::from(w) / f64::from(h)).ln();
    let distance = |&(a, b): &(u32, u32)| ((f64::from(a) / f64::from(b)).ln() - target).abs();
    ratios
        .iter()
        .copied()
        .min_by(|x, y| distance(x).total_cmp(&distance(y)))
        .unwrap_or((1, 1))
}

/// An explicit Ideogram aspect ratio: `16x9`, `16:9` or `ASPECT_16_9`, one the model has.
fn explicit_ratio(s: &str, api: Api) -> Result<(u32, u32), ProviderError> {
    let t = s.trim();
    let t = t
        .strip_prefix("ASPECT_")
        .or_else(|| t.strip_prefix("aspect_"))
        .unwrap_or(t);
    let parsed = t
        .split_once(['x', 'X', ':', '_'])
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    match parsed {
        Some(r) if api.ratios().contains(&r) => Ok(r),
        _ => {
            let allowed: Vec<String> = api
                .ratios()
                .iter()
                .map(|(a, b)| format!("{a}x{b}"))
                .collect();
            Err(bad(format!(
                "'aspect_ratio' {s:?} is not one Ideogram offers for this model; use one of {}",
                allowed.join(", ")
            )))
        }
    }
}

fn quality_speed(q: &str) -> Result<Option<&'static str>, ProviderError> {
    Ok(match q.trim().to_ascii_lowercase().as_str() {
        "auto" => None,
        "low" => Some("TURBO"),
        "standard" | "medium" => Some("DEFAULT"),
        "hd" | "high" => Some("QUALITY"),
        _ => {
            return Err(bad(format!(
                "'quality' {q:?} is not supported; use low, medium, high, standard, hd or auto"
            )))
        }
    })
}

impl ImageRequest {
    /// Reads an OpenAI images body for a model of `api`.
    pub fn from_openai(body: &Value, api: Api) -> Result<Self, ProviderError> {
        let Value::Object(body) = body else {
            return Err(bad("the request body must be a JSON object"));
        };
        let prompt = match string(body, "prompt")? {
            Some(p) if !p.trim().is_empty() => p.to_string(),
            _ => return Err(bad("'prompt' is required: describe the image to generate")),
        };

        let num_images = match field(body, "n") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_IMAGES).contains(&n) => Some(n),
                _ => {
                    return Err(bad(format!(
                        "'n' must be an integer from 1 to {MAX_IMAGES} for Ideogram"
                    )))
                }
            },
        };

        match string(body, "response_format")? {
            None => {}
            Some(f) if f.eq_ignore_ascii_case("url") => {}
            Some(f) if f.eq_ignore_ascii_case("b64_json") => {
                return Err(bad(
                    "Ideogram returns image URLs only and the gateway does not download \
                     them: use \"response_format\": \"url\" and fetch the links (they \
                     expire after a while)",
                ))
            }
            Some(f) => {
                return Err(bad(format!(
                    "'response_format' {f:?} is not supported; use \"url\""
                )))
            }
        }

        let resolution = match string(body, "resolution")? {
            None => None,
            Some(_) if matches!(api, Api::Legacy { .. }) => {
                return Err(bad(
                    "'resolution' is only offered by the ideogram-v3 models",
                ))
            }
            Some(r) => match RESOLUTIONS
                .iter()
                .find(|x| x.eq_ignore_ascii_case(r.trim()))
            {
                Some(x) => Some((*x).to_string()),
                None => {
                    return Err(bad(format!(
                        "'resolution' {r:?} is not one Ideogram 3.0 offers (e.g. 1024x1024, \
                         1280x768, 768x1280); or give 'size' and the nearest aspect ratio is used"
                    )))
                }
            },
        };
        let explicit = string(body, "aspect_ratio")?
            .map(|r| explicit_ratio(r, api))
            .transpose()?;
        if resolution.is_some() && explicit.is_some() {
            return Err(bad(
                "give 'resolution' or 'aspect_ratio', not both: Ideogram takes one",
            ));
        }
        let from_size = match string(body, "size")? {
            None => None,
            Some(s) if s.trim().eq_ignore_ascii_case("auto") => None,
            Some(s) => match dimensions(s) {
                Some(d) => Some(nearest_ratio(d, api.ratios())),
                None => {
                    return Err(bad(format!(
                        "'size' {s:?} must be \"WIDTHxHEIGHT\" (e.g. \"1024x1024\") or \"auto\""
                    )))
                }
            },
        };
        let aspect_ratio = match resolution {
            Some(_) => None,
            None => explicit.or(from_size),
        };

        let rendering_speed = match api {
            Api::V3 { speed } => {
                let asked = match string(body, "rendering_speed")? {
                    Some(s) => Some(one_of("rendering_speed", s, SPEEDS)?),
                    None => match string(body, "quality")? {
                        Some(q) => quality_speed(q)?,
                        None => None,
                    },
                };
                match (speed, asked) {
                    (Some(fixed), Some(a)) if fixed != a => {
                        return Err(bad(format!(
                            "this model renders at {fixed}, but the request asks for {a}; use \
                             ideogram-v3 to choose the speed per request"
                        )))
                    }
                    (Some(fixed), _) => Some(fixed),
                    (None, a) => a,
                }
            }
            Api::Legacy { .. } => {
                if string(body, "rendering_speed")?.is_some() {
                    return Err(bad(
                        "'rendering_speed' is only offered by the ideogram-v3 models; the \
                         legacy models have _TURBO variants instead",
                    ));
                }
                if let Some(q) = string(body, "quality")? {
                    quality_speed(q)?;
                }
                None
            }
        };

        let styles = match api {
            Api::V3 { .. } => V3_STYLES,
            Api::Legacy { .. } => LEGACY_STYLES,
        };
        let style_type = match string(body, "style_type")? {
            Some(s) => Some(one_of("style_type", s, styles)?.to_string()),
            None => match string(body, "style")? {
                None => None,
                Some(s) if s.eq_ignore_ascii_case("vivid") => None,
                Some(s) if s.eq_ignore_ascii_case("natural") => Some("REALISTIC".to_string()),
                Some(s) => {
                    return Err(bad(format!(
                        "'style' {s:?} is not supported; use vivid or natural, or Ideogram's \
                         'style_type'"
                    )))
                }
            },
        };

        let magic = field(body, "magic_prompt").or_else(|| field(body, "magic_prompt_option"));
        let magic_prompt = match magic {
            None => None,
            Some(Value::Bool(true)) => Some("ON"),
            Some(Value::Bool(false)) => Some("OFF"),
            Some(Value::String(s)) => Some(one_of("magic_prompt", s, MAGIC)?),
            Some(_) => return Err(bad("'magic_prompt' must be AUTO, ON or OFF")),
        };

        let negative_prompt = string(body, "negative_prompt")?
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);

        let seed = match field(body, "seed") {
            None => None,
            Some(v) => match v.as_i64() {
                Some(s) if (0..=MAX_SEED).contains(&s) => Some(s),
                _ => {
                    return Err(bad(format!(
                        "'seed' must be an integer from 0 to {MAX_SEED}"
                    )))
                }
            },
        };

        Ok(ImageRequest {
            prompt,
            num_images,
            aspect_ratio,
            resolution,
            rendering_speed,
            style_type,
            magic_prompt,
            negative_prompt,
            seed,
        })
    }

    /// The form fields of Ideogram 3.0's generate endpoint, in a stable order.
    pub fn v3_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("prompt", self.prompt.clone())];
        if let Some(n) = self.num_images {
            f.push(("num_images", n.to_string()));
        }
        if let Some((a, b)) = self.aspect_ratio {
            f.push(("aspect_ratio", format!("{a}x{b}")));
        }
        if let Some(r) = &self.resolution {
            f.push(("resolution", r.clone()));
        }
        if let Some(s) = self.rendering_speed {
            f.push(("rendering_speed", s.to_string()));
        }
        if let Some(s) = &self.style_type {
            f.push(("style_type", s.clone()));
        }
        if let Some(m) = self.magic_prompt {
            f.push(("magic_prompt", m.to_string()));
        }
        if let Some(n) = &self.negative_prompt {
            f.push(("negative_prompt", n.clone()));
        }
        if let Some(s) = self.seed {
            f.push(("seed", s.to_string()));
        }
        f
    }

    /// The legacy endpoint's JSON body for `model`.
    pub fn legacy_body(&self, model: &str) -> Value {
        let mut r = Map::new();
        r.insert("prompt".into(), self.prompt.clone().into());
        r.insert("model".into(), model.into());
        if let Some(n) = self.num_images {
            r.insert("num_images".into(), n.into());
        }
        if let Some((a, b)) = self.aspect_ratio {
            r.insert("aspect_ratio".into(), format!("ASPECT_{a}_{b}").into());
        }
        if let Some(s) = &self.style_type {
            r.insert("style_type".into(), s.clone().into());
        }
        if let Some(m) = self.magic_prompt {
            r.insert("magic_prompt_option".into(), m.into());
        }
        if let Some(n) = &self.negative_prompt {
            r.insert("negative_prompt".into(), n.clone().into());
        }
        if let Some(s) = self.seed {
            r.insert("seed".into(), s.into());
        }
        json!({ "image_request": r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_go_to_the_nearest_ratio_of_each_api() {
        let v3 = Api::V3 { speed: None }.ratios();
        let legacy = Api::Legacy { model: "V_2" }.ratios();
        for (size, want_v3, want_legacy) in [
            ((1024, 1024), (1, 1), (1, 1)),
            ((256, 256), (1, 1), (1, 1)),
            ((1792, 1024), (16, 9), (16, 9)),
            ((1024, 1792), (9, 16), (9, 16)),
            ((1536, 1024), (3, 2), (3, 2)),
            ((1024, 1536), (2, 3), (2, 3)),
            ((1280, 1024), (5, 4), (4, 3)),
            ((2048, 1024), (2, 1), (16, 9)),
            ((4000, 1000), (3, 1), (3, 1)),
        ] {
            assert_eq!(nearest_ratio(size, v3), want_v3, "{size:?}");
            assert_eq!(nearest_ratio(size, legacy), want_legacy, "{size:?}");
        }
    }

    #[test]
    fn models_and_their_apis() {
        assert_eq!(Api::of("ideogram-v3").unwrap(), Api::V3 { speed: None });
        assert_eq!(
            Api::of("Ideogram-V3-Turbo").unwrap(),
            Api::V3 {
                speed: Some("TURBO")
            }
        );
        assert_eq!(Api::of("v_3").unwrap(), Api::V3 { speed: None });
        assert_eq!(
            Api::of("v_2a_turbo").unwrap(),
            Api::Legacy {
                model: "V_2A_TURBO"
            }
        );
        let e = Api::of("dall-e-3").unwrap_err();
        assert!(
            e.message.contains("ideogram-v3") && e.message.contains("V_2"),
            "{e}"
        );
    }

    #[test]
    fn explicit_ratios_in_every_spelling() {
        let v3 = Api::V3 { speed: None };
        for s in ["16x9", "16:9", "ASPECT_16_9", " 16X9 "] {
            assert_eq!(explicit_ratio(s, v3).unwrap(), (16, 9), "{s}");
        }
        assert!(explicit_ratio("4x5", Api::Legacy { model: "V_2" }).is_err());
        assert!(explicit_ratio("7x3", v3).is_err());
    }
}
