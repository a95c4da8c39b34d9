//! A `multipart/form-data` body of text fields (RFC 7578), for Ideogram 3.0, which takes
//! its parameters as a form. The host sends the bytes and content type as they are.

/// The boundary's stem; a counter is added until no value contains the boundary, so the
/// body is deterministic for a given request (tests compare it byte for byte).
const STEM: &str = "aihub-ideogram-form";

/// The body and its `content-type` header value.
pub fn form(fields: &[(&str, String)]) -> (Vec<u8>, String) {
    let boundary = (0u32..)
        .map(|i| {
            if i == 0 {
                STEM.to_string()
            } else {
                format!("{STEM}-{i}")
            }
        })
        .find(|b| !fields.iter().any(|(_, v)| v.contains(b.as_str())))
        .unwrap_or_else(|| STEM.to_string());
    let mut body = Vec::new();
    for (name, value) in fields {
        // Names are the plugin's own ASCII constants; no quoting is needed.
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_order_with_crlf_framing() {
        let (body, ct) = form(&[("prompt", "a cat".into()), ("num_images", "2".into())]);
        assert_eq!(ct, "multipart/form-data; boundary=aihub-ideogram-form");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--aihub-ideogram-form\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n\
             --aihub-ideogram-form\r\nContent-Disposition: form-data; name=\"num_images\"\r\n\r\n2\r\n\
             --aihub-ideogram-form--\r\n"
        );
    }

    #[test]
    fn a_value_holding_the_boundary_gets_another_one() {
        let tricky = "x\r\n--aihub-ideogram-form--\r\n and aihub-ideogram-form-1".to_string();
        let (body, ct) = form(&[("prompt", tricky.clone())]);
        assert_eq!(ct, "multipart/form-data; boundary=aihub-ideogram-form-2");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(&tricky));
        assert!(text.ends_with("--aihub-ideogram-form-2--\r\n"));
    }
}
