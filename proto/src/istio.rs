//! Istio's certificate service, `istio.v1.auth` (istio/api
//! `security/v1alpha1/ca.proto`), written as prost messages by hand: three
//! small messages do not need a protoc at build time. Field numbers are
//! Istio's; number 2 (`subject_id`) was removed there and stays unused.

/// `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds; 0 asks for the CA's default.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Opaque node metadata (Istio reads `WorkloadName`, `WorkloadIP`, `ClusterID`).
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<prost_types::Struct>,
}

/// `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates, the leaf first and the root last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// The gRPC service name.
pub const CERTIFICATE_SERVICE: &str = "istio.v1.auth.IstioCertificateService";
/// The one method's path.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The bytes a protoc-generated client writes for the same request:
    /// field 1 (string), field 3 (varint), field 4 (message).
    #[test]
    fn encodes_with_istios_field_numbers() {
        let request = IstioCertificateRequest {
            csr: "C".into(),
            validity_duration: 60,
            metadata: Some(prost_types::Struct::default()),
        };
        assert_eq!(
            request.encode_to_vec(),
            [0x0a, 0x01, b'C', 0x18, 60, 0x22, 0x00]
        );
        let response = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            response.encode_to_vec(),
            [0x0a, 0x01, b'a', 0x0a, 0x01, b'b']
        );
    }
}
