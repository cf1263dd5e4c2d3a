//! The controller's control API in the lab: `[api]` sections and clients
//! of them.

use super::Lab;
use crate::api::{ApiAt, ApiClient};

/// The token the labs' APIs are guarded by.
pub const API_TOKEN: &str = "lab-token-7f3c9a51d2e84b06";
/// Where a TCP API listens in the edge namespace.
pub const API_TCP: &str = "127.0.0.1:9561";

impl Lab {
    fn api_token_file(&self) -> std::path::PathBuf {
        let path = self.dir.join("api-token");
        std::fs::write(&path, format!("{API_TOKEN}\n")).expect("token file");
        path
    }

    /// An `[api]` section on a Unix socket in the lab's directory, with a
    /// token, and a client of it.
    pub fn api_unix(&self) -> (String, ApiClient) {
        let socket = self.dir.join("api.sock");
        let section = format!(
            "[api]\nlisten = \"unix:{}\"\ntoken_file = \"{}\"\n",
            socket.display(),
            self.api_token_file().display()
        );
        (section, ApiClient { at: ApiAt::Unix(socket), token: Some(API_TOKEN.into()) })
    }

    /// An `[api]` section on TCP (`API_TCP` in the edge namespace), with a
    /// token, and a client of it.
    pub fn api_tcp(&self) -> (String, ApiClient) {
        let section = format!("[api]\nlisten = \"{API_TCP}\"\ntoken_file = \"{}\"\n", self.api_token_file().display());
        let at = ApiAt::Tcp { netns: self.edge.clone(), base: format!("http://{API_TCP}") };
        (section, ApiClient { at, token: Some(API_TOKEN.into()) })
    }
}
