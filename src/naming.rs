//! Names: which blob is a backup of which export, where its copy goes in the model store, and
//! the tags and metadata it carries. Pure functions over validated ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use url::Url;

use crate::notification::{ExportPlatform, IterationId, ProjectId};

/// A backup blob of a finished export, named `{projectId} - {iterationId}.{platform}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupBlob {
    pub name: String,
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    /// `None` for a `.zip` backup: the package format says nothing about the platform.
    pub platform: Option<ExportPlatform>,
    pub extension: String,
}

impl BackupBlob {
    /// The documented prefix; every backup of this iteration starts with it.
    pub fn prefix(project_id: ProjectId, iteration_id: IterationId) -> String {
        format!("{project_id} - {iteration_id}.")
    }

    /// Accepts `name` only if it is exactly a backup of this iteration: the documented prefix
    /// (ids compared case-insensitively) and a known platform or `zip` suffix, any case.
    pub fn classify(name: &str, project_id: ProjectId, iteration_id: IterationId) -> Option<Self> {
        let prefix = Self::prefix(project_id, iteration_id);
        if name.len() <= prefix.len() || !name.is_char_boundary(prefix.len()) {
            return None;
        }
        let (head, extension) = name.split_at(prefix.len());
        if !head.eq_ignore_ascii_case(&prefix) {
            return None;
        }
        let platform = ExportPlatform::parse(extension);
        if platform.is_none() && !extension.eq_ignore_ascii_case("zip") {
            return None;
        }
        Some(Self {
            name: name.to_string(),
            project_id,
            iteration_id,
            platform,
            extension: extension.to_string(),
        })
    }

    /// What goes in the `platform` tag and the `{platform}` placeholder.
    pub fn platform_label(&self) -> String {
        match self.platform {
            Some(p) => p.as_str().to_string(),
            None => self.extension.to_ascii_lowercase(),
        }
    }

    /// Index tags. Deterministic, so re-applying them is a no-op.
    pub fn tags(&self, container: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("projectId".into(), self.project_id.to_string()),
            ("iterationId".into(), self.iteration_id.to_string()),
            ("platform".into(), self.platform_label()),
            ("source".into(), format!("{container}/{}", self.name)),
        ])
    }

    /// Metadata (names must be C# identifiers). `source_etag` is set on copies: it is how a
    /// redelivered message recognises a copy that is already done.
    pub fn metadata(&self, container: &str, source_etag: Option<&str>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            ("cvprojectid".into(), self.project_id.to_string()),
            ("cviterationid".into(), self.iteration_id.to_string()),
            ("cvplatform".into(), self.platform_label()),
            ("cvsourceblob".into(), format!("{container}/{}", self.name)),
        ]);
        if let Some(etag) = source_etag {
            m.insert(SOURCE_ETAG_KEY.into(), etag.to_string());
        }
        m
    }
}

pub const SOURCE_ETAG_KEY: &str = "cvsourceetag";

/// If `model_uri` points into `container` under `blob_endpoint` (same host, port and account
/// path), the blob name it names, percent-decoded. Any query (a SAS) is ignored.
pub fn blob_name_in_container(
    model_uri: &Url,
    blob_endpoint: &Url,
    container: &str,
) -> Option<String> {
    let same_origin = model_uri.scheme() == blob_endpoint.scheme()
        && model_uri
            .host_str()?
            .eq_ignore_ascii_case(blob_endpoint.host_str()?)
        && model_uri.port_or_known_default() == blob_endpoint.port_or_known_default();
    if !same_origin {
        return None;
    }
    let base = blob_endpoint.path().trim_end_matches('/');
    let rest = model_uri.path().strip_prefix(base)?;
    let name = rest
        .strip_prefix('/')?
        .strip_prefix(container)?
        .strip_prefix('/')?;
    let decoded = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?;
    (!decoded.is_empty()).then(|| decoded.into_owned())
}

/// Encodes tags as the `x-ms-tags` header (`k=v&k2=v2`, percent-encoded).
pub fn tags_header(tags: &BTreeMap<String, String>) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let mut out = String::new();
    for (k, v) in tags {
        if !out.is_empty() {
            out.push('&');
        }
        let _ = write!(
            out,
            "{}={}",
            utf8_percent_encode(k, NON_ALPHANUMERIC),
            utf8_percent_encode(v, NON_ALPHANUMERIC)
        );
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}} (known: {{projectId}} {{iterationId}} {{platform}} {{extension}} {{blobName}})")]
    UnknownPlaceholder(String),
    #[error("unbalanced braces")]
    Unbalanced,
    #[error("must contain {{blobName}}, or {{iterationId}} with {{platform}} or {{extension}}, so that two models never share a path")]
    NotUnique,
    #[error("must be a relative path without empty, '.' or '..' segments")]
    BadPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    ProjectId,
    IterationId,
    Platform,
    Extension,
    BlobName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// `MODEL_PATH_TEMPLATE`: where a backup's copy goes in the model store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate(Vec<Piece>);

impl PathTemplate {
    pub const DEFAULT: &'static str = "{projectId}/{iterationId}/{platform}/{blobName}";

    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateError::Unbalanced),
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Text(rest[..i].to_string()));
                    }
                    let end = rest[i..].find('}').ok_or(TemplateError::Unbalanced)? + i;
                    let name = &rest[i + 1..end];
                    let p = match name {
                        "projectId" => Placeholder::ProjectId,
                        "iterationId" => Placeholder::IterationId,
                        "platform" => Placeholder::Platform,
                        "extension" => Placeholder::Extension,
                        "blobName" => Placeholder::BlobName,
                        _ if name.contains('{') => return Err(TemplateError::Unbalanced),
                        _ => return Err(TemplateError::UnknownPlaceholder(name.to_string())),
                    };
                    pieces.push(Piece::Value(p));
                    rest = &rest[end + 1..];
                }
                None => {
                    pieces.push(Piece::Text(rest.to_string()));
                    rest = "";
                }
            }
        }
        let has = |p| pieces.contains(&Piece::Value(p));
        let unique = has(Placeholder::BlobName)
            || (has(Placeholder::IterationId)
                && (has(Placeholder::Platform) || has(Placeholder::Extension)));
        if !unique {
            return Err(TemplateError::NotUnique);
        }
        let literal_path_ok = pieces.iter().all(|p| match p {
            Piece::Text(t) => !t.contains("//") && !t.chars().any(char::is_control),
            Piece::Value(_) => true,
        });
        let starts_ok = !matches!(pieces.first(), Some(Piece::Text(t)) if t.starts_with('/'));
        if !literal_path_ok || !starts_ok || template.split('/').any(|s| s == "." || s == "..") {
            return Err(TemplateError::BadPath);
        }
        Ok(Self(pieces))
    }

    pub fn render(&self, backup: &BackupBlob) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(t) => t.clone(),
                Piece::Value(Placeholder::ProjectId) => backup.project_id.to_string(),
                Piece::Value(Placeholder::IterationId) => backup.iteration_id.to_string(),
                Piece::Value(Placeholder::Platform) => backup.platform_label(),
                Piece::Value(Placeholder::Extension) => backup.extension.clone(),
                Piece::Value(Placeholder::BlobName) => backup.name.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b";
    const I: &str = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";

    fn ids() -> (ProjectId, IterationId) {
        (ProjectId::parse(P).unwrap(), IterationId::parse(I).unwrap())
    }

    #[test]
    fn classify_documented_names() {
        let (p, i) = ids();
        for (suffix, platform) in [
            ("ONNX", Some(ExportPlatform::Onnx)),
            ("onnx", Some(ExportPlatform::Onnx)),
            ("CoreML", Some(ExportPlatform::CoreMl)),
            ("tensorflow", Some(ExportPlatform::TensorFlow)),
            ("DockerFile", Some(ExportPlatform::DockerFile)),
            ("zip", None),
            ("ZIP", None),
        ] {
            let name = format!("{P} - {I}.{suffix}");
            let b = BackupBlob::classify(&name, p, i).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(b.platform, platform);
        }
        let upper = format!("{} - {}.ONNX", P.to_uppercase(), I.to_uppercase());
        assert!(BackupBlob::classify(&upper, p, i).is_some());
    }

    #[test]
    fn classify_rejects_everything_else() {
        let (p, i) = ids();
        let other = "00000000-0000-0000-0000-000000000000";
        for name in [
            format!("{P} - {I}."),
            format!("{P} - {I}.exe"),
            format!("{P} - {I}.ONNX.tmp"),
            format!("{P} - {other}.ONNX"),
            format!("{P}-{I}.ONNX"),
            format!("CustomVision-TestPermission/{P} - {I}.ONNX"),
            format!("{P} - {I}"),
            "é".repeat(40),
        ] {
            assert!(BackupBlob::classify(&name, p, i).is_none(), "{name}");
        }
    }

    #[test]
    fn model_uri_inside_the_backup_container() {
        let azure = Url::parse("https://acct.blob.core.windows.net").unwrap();
        let azurite = Url::parse("http://127.0.0.1:41000/devstoreaccount1").unwrap();
        let name = format!("{P} - {I}.ONNX");
        let enc = name.replace(' ', "%20");
        let cases = [
            (
                format!("https://acct.blob.core.windows.net/customvision-backups/{enc}?sv=1&sig=x"),
                &azure,
                Some(name.clone()),
            ),
            (
                format!("https://ACCT.blob.core.windows.net:443/customvision-backups/{enc}"),
                &azure,
                Some(name.clone()),
            ),
            (
                format!("http://127.0.0.1:41000/devstoreaccount1/customvision-backups/{enc}"),
                &azurite,
                Some(name.clone()),
            ),
            (
                format!("https://other.blob.core.windows.net/customvision-backups/{enc}"),
                &azure,
                None,
            ),
            (
                format!("https://acct.blob.core.windows.net/elsewhere/{enc}"),
                &azure,
                None,
            ),
            (
                format!("https://acct.blob.core.windows.net/customvision-backupsX/{enc}"),
                &azure,
                None,
            ),
            (
                format!("http://127.0.0.1:41001/devstoreaccount1/customvision-backups/{enc}"),
                &azurite,
                None,
            ),
            (
                "https://acct.blob.core.windows.net/customvision-backups/".to_string(),
                &azure,
                None,
            ),
        ];
        for (uri, endpoint, expected) in cases {
            let uri = Url::parse(&uri).unwrap();
            assert_eq!(
                blob_name_in_container(&uri, endpoint, "customvision-backups"),
                expected,
                "{uri}"
            );
        }
    }

    #[test]
    fn default_template_and_placeholders() {
        let (p, i) = ids();
        let b = BackupBlob::classify(&format!("{P} - {I}.onnx"), p, i).unwrap();
        let t = PathTemplate::parse(PathTemplate::DEFAULT).unwrap();
        assert_eq!(t.render(&b), format!("{P}/{I}/ONNX/{P} - {I}.onnx"));
        let t = PathTemplate::parse("models/{projectId}/{iterationId}.{extension}").unwrap();
        assert_eq!(t.render(&b), format!("models/{P}/{I}.onnx"));
        let zip = BackupBlob::classify(&format!("{P} - {I}.zip"), p, i).unwrap();
        assert_eq!(
            PathTemplate::parse("{iterationId}/{platform}")
                .unwrap()
                .render(&zip),
            format!("{I}/zip")
        );
    }

    #[test]
    fn template_errors() {
        for (t, e) in [
            (
                "{nope}/{blobName}",
                TemplateError::UnknownPlaceholder("nope".into()),
            ),
            ("{blobName", TemplateError::Unbalanced),
            ("blobName}", TemplateError::Unbalanced),
            ("{{blobName}}", TemplateError::Unbalanced),
            ("{projectId}/model", TemplateError::NotUnique),
            ("{iterationId}/model", TemplateError::NotUnique),
            ("/{blobName}", TemplateError::BadPath),
            ("a//{blobName}", TemplateError::BadPath),
            ("../{blobName}", TemplateError::BadPath),
        ] {
            assert_eq!(PathTemplate::parse(t), Err(e), "{t}");
        }
    }

    #[test]
    fn tags_and_metadata() {
        let (p, i) = ids();
        let b = BackupBlob::classify(&format!("{P} - {I}.ONNX"), p, i).unwrap();
        let tags = b.tags("customvision-backups");
        assert_eq!(tags["projectId"], P);
        assert_eq!(tags["iterationId"], I);
        assert_eq!(tags["platform"], "ONNX");
        // Allowed tag characters only: alphanumerics, space and + - . / : = _
        for v in tags.values().chain(tags.keys()) {
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " +-./:=_".contains(c)),
                "{v}"
            );
        }
        let m = b.metadata("customvision-backups", Some("\"0x1\""));
        assert_eq!(m[SOURCE_ETAG_KEY], "\"0x1\"");
        assert!(!b.metadata("c", None).contains_key(SOURCE_ETAG_KEY));
        assert_eq!(
            tags_header(&BTreeMap::from([
                ("a b".into(), "x/y".into()),
                ("k".into(), "v".into())
            ])),
            "a%20b=x%2Fy&k=v"
        );
    }
}
