//! The bits of the host config the kernel needs before the real parser lands.
//!
//! `boot_proto::config` will own the format (docs/config.md). Until the kernel switches to
//! it, [`host_name`] finds `name = X` in the `[host]` section with the same basic lexical
//! rules (`#` comments, surrounding whitespace, optional double quotes). Callers only use
//! this function, so the switch is local.

/// The host name from the `[host]` section, if the config sets one.
pub fn host_name(config: &str) -> Option<&str> {
    let mut in_host = false;
    for raw in config.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_host = line == "[host]";
            continue;
        }
        if !in_host {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "name" {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        return (!value.is_empty()).then_some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn finds_name_only_in_host_section() {
        let cfg = "[vm web]\nname = wrong\n\n[host]  \n# comment\n  name = \"alpha\"  # trailing\n";
        assert_eq!(host_name(cfg), Some("alpha"));
        assert_eq!(
            host_name("[host]\nname=beta\n[net]\nname = x"),
            Some("beta")
        );
        assert_eq!(host_name("[host]\r\nname = gamma\r\n"), Some("gamma"));
    }

    #[test]
    fn absent_or_empty_name_is_none() {
        assert_eq!(host_name(""), None);
        assert_eq!(host_name("[net]\nname = x\n"), None);
        assert_eq!(host_name("[host]\nname =\n"), None);
        assert_eq!(host_name("[host]\nhostname = x\n"), None);
        assert_eq!(host_name("name = top\n[host]\n"), None);
    }
}
