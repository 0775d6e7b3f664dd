//! Reading a kubeconfig written by kubeadm: the first cluster, user and context, and the data
//! embedded in them.

use base64::Engine as _;
use yaml_rust2::{Yaml, YamlLoader};

/// What one kubeconfig holds. `Debug` elides the client key.
pub struct Kubeconfig {
    /// The cluster entry's name (kubeadm: `kubernetes`).
    pub cluster: String,
    /// The API server URL.
    pub server: String,
    /// The user entry's name.
    pub user: String,
    /// The current context's name.
    pub context: String,
    /// `certificate-authority-data`, decoded.
    pub ca: Option<Vec<u8>>,
    /// `client-certificate-data` and `client-key-data`, decoded, when both are embedded.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Kubeconfig {{ user: {}, [client key elided] }}",
            self.user
        )
    }
}

/// Parses a kubeconfig, or says in words why it cannot (never quoting its content).
pub fn parse(text: &str) -> Result<Kubeconfig, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|_| "not a YAML document".to_string())?;
    let doc = docs.first().ok_or("an empty document")?;
    let first = |key: &str| doc[key].as_vec().and_then(|v| v.first()).cloned();
    let cluster = first("clusters").ok_or("no cluster entry")?;
    let user = first("users").ok_or("no user entry")?;
    let server = str_of(&cluster["cluster"]["server"]).ok_or("no server URL")?;
    let data = |v: &Yaml| -> Result<Option<Vec<u8>>, String> {
        match v.as_str() {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map(Some)
                .map_err(|_| "embedded data that is not base64".to_string()),
        }
    };
    let cert = data(&user["user"]["client-certificate-data"])?;
    let key = data(&user["user"]["client-key-data"])?;
    Ok(Kubeconfig {
        cluster: str_of(&cluster["name"]).unwrap_or_default(),
        server,
        user: str_of(&user["name"]).unwrap_or_default(),
        context: str_of(&doc["current-context"]).unwrap_or_default(),
        ca: data(&cluster["cluster"]["certificate-authority-data"])?,
        client: cert.zip(key),
    })
}

fn str_of(v: &Yaml) -> Option<String> {
    v.as_str().map(String::from)
}
