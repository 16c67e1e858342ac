//! Taking credentials out of text before it is logged, stored in a DLQ header
//! or shown: both binaries quote URLs and Moodle parameters in their messages.

/// `text` with every URL password replaced by `***` (`amqp://relay:***@mq/…`;
/// a user name alone is kept) and the values of `wstoken=` and `token=`
/// parameters replaced by `***`.
pub fn credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(['/', '?', '#', ' ', '"', '\''])
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at_sign) => {
                let userinfo = &tail[..at_sign];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                rest = &tail[at_sign..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    token_parameters(&out)
}

fn token_parameters(text: &str) -> String {
    let mut out = text.to_owned();
    for key in ["wstoken=", "token="] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(key) {
            let start = from + pos + key.len();
            let end = out[start..]
                .find(['&', ' ', '"', '\'', '\n'])
                .map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_token_parameters_are_hidden() {
        assert_eq!(
            credentials("connect amqp://relay:s3cret@mq:5672/%2f failed"),
            "connect amqp://relay:***@mq:5672/%2f failed"
        );
        assert_eq!(
            credentials("amqp://relay:s3cr@t@mq:5672/%2f"),
            "amqp://relay:***@mq:5672/%2f"
        );
        assert_eq!(
            credentials("POST wstoken=abc123&wsfunction=x"),
            "POST wstoken=***&wsfunction=x"
        );
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "https://lms.example.edu/ ok",
            "amqp://mq:5672/%2f",
            "amqp://user@mq/%2f",
            "not a url",
        ] {
            assert_eq!(credentials(text), text);
        }
    }
}
