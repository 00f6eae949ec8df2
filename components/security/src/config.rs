//! The `[security]` config section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::SecurityError;

/// `[security]`: TLS for every gRPC and HTTP endpoint. Set all of `ca-path`, `cert-path` and
/// `key-path` to turn TLS on (servers then require client certificates signed by the CA);
/// leave all three empty for plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecurityConfig {
    /// PEM file of the certificate authority that signs every server and client certificate.
    pub ca_path: PathBuf,
    /// PEM file of this process's certificate (presented as server and as client).
    pub cert_path: PathBuf,
    /// PEM file of the private key of `cert-path`.
    pub key_path: PathBuf,
    /// Common Names a client certificate may carry. Empty: any certificate signed by the CA.
    pub cert_allowed_cn: Vec<String>,
}

impl SecurityConfig {
    /// A config using the three files (TLS on, any CN allowed).
    pub fn new(
        ca_path: impl Into<PathBuf>,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> SecurityConfig {
        SecurityConfig {
            ca_path: ca_path.into(),
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            cert_allowed_cn: Vec::new(),
        }
    }

    /// Whether TLS is on: `Ok(true)` with all three paths, `Ok(false)` with none, and
    /// [`SecurityError::Incomplete`] naming the missing keys otherwise.
    pub fn enabled(&self) -> Result<bool, SecurityError> {
        let paths = [
            ("ca-path", &self.ca_path),
            ("cert-path", &self.cert_path),
            ("key-path", &self.key_path),
        ];
        let missing: Vec<&str> = paths
            .iter()
            .filter(|(_, p)| p.as_os_str().is_empty())
            .map(|(name, _)| *name)
            .collect();
        match missing.len() {
            0 => Ok(true),
            3 => {
                if self.cert_allowed_cn.is_empty() {
                    Ok(false)
                } else {
                    Err(SecurityError::Incomplete {
                        missing: missing.join(", "),
                    })
                }
            }
            _ => Err(SecurityError::Incomplete {
                missing: missing.join(", "),
            }),
        }
    }

    /// Checks the keys' combination (not the files: see [`crate::TlsMaterial::load`]).
    pub fn validate(&self) -> Result<(), SecurityError> {
        self.enabled()?;
        if self.cert_allowed_cn.iter().any(|cn| cn.trim().is_empty()) {
            return Err(SecurityError::EmptyAllowedCn);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_all_or_none_of_the_paths() {
        assert!(!SecurityConfig::default().enabled().unwrap());
        assert!(SecurityConfig::new("a", "b", "c").enabled().unwrap());
        let partial = SecurityConfig {
            ca_path: "ca.pem".into(),
            ..SecurityConfig::default()
        };
        let err = partial.validate().unwrap_err().to_string();
        assert!(
            err.contains("cert-path") && err.contains("key-path"),
            "{err}"
        );
        let cn_only = SecurityConfig {
            cert_allowed_cn: vec!["x".into()],
            ..SecurityConfig::default()
        };
        assert!(cn_only.validate().is_err());
        let blank_cn = SecurityConfig {
            cert_allowed_cn: vec![" ".into()],
            ..SecurityConfig::new("a", "b", "c")
        };
        assert!(matches!(
            blank_cn.validate(),
            Err(SecurityError::EmptyAllowedCn)
        ));
    }

    #[test]
    fn security_section_parses_kebab_case() {
        #[derive(Deserialize)]
        struct Doc {
            security: SecurityConfig,
        }
        let doc: Doc = toml::from_str(
            "[security]\nca-path = \"ca.pem\"\ncert-path = \"c.pem\"\nkey-path = \"k.pem\"\n\
             cert-allowed-cn = [\"shoal-client\"]\n",
        )
        .unwrap();
        assert_eq!(doc.security.cert_allowed_cn, vec!["shoal-client"]);
        assert!(doc.security.enabled().unwrap());
    }
}
