//! TokenReview: the API server says whose a token is. The request and the
//! reading of its answer are the CA's (`citadel::review`); this only
//! carries them, as JSON, over the control plane's Kubernetes client.

use k8s_openapi::api::authentication::v1::TokenReview;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::Value;

/// Creates TokenReviews on one API server.
#[derive(Clone)]
pub struct TokenReviews {
    api: Api<TokenReview>,
}

impl std::fmt::Debug for TokenReviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenReviews")
    }
}

impl TokenReviews {
    pub fn new(client: Client) -> TokenReviews {
        TokenReviews {
            api: Api::all(client),
        }
    }

    /// Creates `review` (a TokenReview as JSON) and returns the API
    /// server's answer, its `status` filled in.
    pub async fn create(&self, review: Value) -> Result<Value, String> {
        let review: TokenReview =
            serde_json::from_value(review).map_err(|e| format!("not a TokenReview: {e}"))?;
        let answer = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(answer).map_err(|e| e.to_string())
    }
}
