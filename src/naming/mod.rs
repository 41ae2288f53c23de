//! Names: which blob is a backup of which export, where its copy goes in the model store, and
//! the tags and metadata it carries. Pure functions over validated ids.
//!
//! - [`stored`]: every tag, metadata key and fixed path the store holds, defined once.

pub mod stored;

use std::collections::BTreeMap;

use url::Url;

use crate::domain::{ExportPlatform, IterationId, ProjectId};
use stored::{model_metadata, model_tags, EXTENSION_KEY, TAG_SOURCE};

/// Where an exported model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A backup in the configured container (the project's `exportModelContainerUri`).
    Backup { container: String },
    /// The blob a SAS `modelUri` names, recorded without its query (the SAS).
    Sas { url: Url },
}

/// The platform a model is for, as far as its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Known(ExportPlatform),
    /// A `.zip` backup: the package format says nothing about the platform.
    Zip,
    /// A SAS source nothing names the platform of. Custom Vision's download names are hashes,
    /// so two exports of one iteration would share every other name: the first 4 bytes of
    /// SHA-256 over the source's host and path tell them apart, the same on every delivery.
    Unknown([u8; 4]),
}

impl Platform {
    /// What goes in the `platform` tag, the `{platform}` placeholder and the `latest` path:
    /// `ONNX`, `zip`, `unknown-1a2b3c4d`.
    pub fn label(self) -> String {
        match self {
            Self::Known(p) => p.as_str().to_string(),
            Self::Zip => "zip".to_string(),
            Self::Unknown(hash) => {
                format!("{UNKNOWN_LABEL_PREFIX}{:08x}", u32::from_be_bytes(hash))
            }
        }
    }

    pub fn is_unknown(self) -> bool {
        matches!(self, Self::Unknown(_))
    }

    /// The [`Platform::Unknown`] of a source at `host` and `path`.
    pub fn unknown_at(host: &str, path: &str) -> Self {
        use sha2::{Digest, Sha256};
        let hash = Sha256::new()
            .chain_update(host.as_bytes())
            .chain_update(b"/")
            .chain_update(path.as_bytes())
            .finalize();
        let mut head = [0u8; 4];
        head.copy_from_slice(&hash[..4]);
        Self::Unknown(head)
    }
}

/// How the label of a [`Platform::Unknown`] starts.
pub const UNKNOWN_LABEL_PREFIX: &str = "unknown-";

/// The model blob of one finished export, named from validated ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedModel {
    pub origin: Origin,
    /// `{blobName}`: the backup's name, or for a SAS source the name a backup would have had,
    /// `{projectId} - {iterationId}.{extension}`.
    pub name: String,
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    pub platform: Platform,
    pub extension: String,
}

impl ExportedModel {
    /// The documented prefix; every backup of this iteration starts with it.
    pub fn prefix(project_id: ProjectId, iteration_id: IterationId) -> String {
        format!("{project_id} - {iteration_id}.")
    }

    /// Accepts `name` only if it is exactly a backup of this iteration: the documented prefix
    /// (ids compared case-insensitively) and a known platform or `zip` suffix, any case.
    pub fn from_backup_name(
        name: &str,
        container: &str,
        project_id: ProjectId,
        iteration_id: IterationId,
    ) -> Option<Self> {
        let prefix = Self::prefix(project_id, iteration_id);
        if name.len() <= prefix.len() || !name.is_char_boundary(prefix.len()) {
            return None;
        }
        let (head, extension) = name.split_at(prefix.len());
        if !head.eq_ignore_ascii_case(&prefix) {
            return None;
        }
        let platform = match ExportPlatform::parse(extension) {
            Some(p) => Platform::Known(p),
            None if extension.eq_ignore_ascii_case("zip") => Platform::Zip,
            None => return None,
        };
        Some(Self {
            origin: Origin::Backup {
                container: container.to_string(),
            },
            name: name.to_string(),
            project_id,
            iteration_id,
            platform,
            extension: extension.to_string(),
        })
    }

    /// A SAS source: the platform comes from the URL's file name when that names one
    /// (`….ONNX`), else `unknown`; the extension is the file's (`zip` when it has none).
    pub fn from_sas(url: &Url, project_id: ProjectId, iteration_id: IterationId) -> Self {
        let mut plain = url.clone();
        plain.set_query(None);
        plain.set_fragment(None);
        let file = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(|f| {
                percent_encoding::percent_decode_str(f)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let extension = file
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("zip")
            .to_string();
        let platform = match ExportPlatform::parse(&extension) {
            Some(p) => Platform::Known(p),
            None => Platform::unknown_at(url.host_str().unwrap_or_default(), url.path()),
        };
        Self {
            origin: Origin::Sas { url: plain },
            name: format!("{}{extension}", Self::prefix(project_id, iteration_id)),
            project_id,
            iteration_id,
            platform,
            extension,
        }
    }

    /// Where the model came from, for metadata and logs: `container/blob`, or the SAS URL
    /// without its query.
    pub fn source(&self) -> String {
        match &self.origin {
            Origin::Backup { container } => format!("{container}/{}", self.name),
            Origin::Sas { url } => url.to_string(),
        }
    }

    /// The same as a tag value: tags allow letters, digits, space and `+ - . / : = _` only,
    /// up to 256 characters.
    fn source_tag(&self) -> String {
        let raw = match &self.origin {
            Origin::Backup { .. } => self.source(),
            Origin::Sas { url } => format!("{}{}", url.host_str().unwrap_or_default(), url.path()),
        };
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " +-./:=_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(256)
            .collect()
    }

    /// Index tags, deterministic so re-applying them is a no-op. `kind` tells a model-store
    /// copy (`model`) from the `latest` alias and from a backup tagged in place.
    pub fn tags(&self, kind: &str) -> BTreeMap<String, String> {
        let mut tags = model_tags(
            self.project_id,
            self.iteration_id,
            &self.platform.label(),
            kind,
        );
        tags.insert(TAG_SOURCE.into(), self.source_tag());
        tags
    }

    /// Metadata (names must be C# identifiers). `source_etag` is set on copies: it is how a
    /// redelivered message recognises a copy that is already done.
    pub fn metadata(&self, source_etag: Option<&str>) -> BTreeMap<String, String> {
        let mut m = model_metadata(
            self.project_id,
            self.iteration_id,
            &self.platform.label(),
            &self.source(),
            source_etag,
        );
        m.insert(EXTENSION_KEY.into(), self.extension.clone());
        m
    }
}

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

    pub fn render(&self, backup: &ExportedModel) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(t) => t.clone(),
                Piece::Value(Placeholder::ProjectId) => backup.project_id.to_string(),
                Piece::Value(Placeholder::IterationId) => backup.iteration_id.to_string(),
                Piece::Value(Placeholder::Platform) => backup.platform.label(),
                Piece::Value(Placeholder::Extension) => backup.extension.clone(),
                Piece::Value(Placeholder::BlobName) => backup.name.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::stored::{KIND_MODEL, SOURCE_ETAG_KEY};
    use super::*;

    use crate::domain::examples::{ITERATION as I, PROJECT as P};

    fn ids() -> (ProjectId, IterationId) {
        (ProjectId::parse(P).unwrap(), IterationId::parse(I).unwrap())
    }

    #[test]
    fn from_backup_name_documented_names() {
        let (p, i) = ids();
        for (suffix, platform) in [
            ("ONNX", Platform::Known(ExportPlatform::Onnx)),
            ("onnx", Platform::Known(ExportPlatform::Onnx)),
            ("CoreML", Platform::Known(ExportPlatform::CoreMl)),
            ("tensorflow", Platform::Known(ExportPlatform::TensorFlow)),
            ("DockerFile", Platform::Known(ExportPlatform::DockerFile)),
            ("zip", Platform::Zip),
            ("ZIP", Platform::Zip),
        ] {
            let name = format!("{P} - {I}.{suffix}");
            let b = ExportedModel::from_backup_name(&name, "c", p, i)
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(b.platform, platform);
        }
        let upper = format!("{} - {}.ONNX", P.to_uppercase(), I.to_uppercase());
        assert!(ExportedModel::from_backup_name(&upper, "c", p, i).is_some());
    }

    #[test]
    fn from_backup_name_rejects_everything_else() {
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
            assert!(
                ExportedModel::from_backup_name(&name, "c", p, i).is_none(),
                "{name}"
            );
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
        let b = ExportedModel::from_backup_name(&format!("{P} - {I}.onnx"), "c", p, i).unwrap();
        let t = PathTemplate::parse(PathTemplate::DEFAULT).unwrap();
        assert_eq!(t.render(&b), format!("{P}/{I}/ONNX/{P} - {I}.onnx"));
        let t = PathTemplate::parse("models/{projectId}/{iterationId}.{extension}").unwrap();
        assert_eq!(t.render(&b), format!("models/{P}/{I}.onnx"));
        let zip = ExportedModel::from_backup_name(&format!("{P} - {I}.zip"), "c", p, i).unwrap();
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
        let b = ExportedModel::from_backup_name(
            &format!("{P} - {I}.ONNX"),
            "customvision-backups",
            p,
            i,
        )
        .unwrap();
        let tags = b.tags(KIND_MODEL);
        assert_eq!(
            tags["source"],
            format!("customvision-backups/{P} - {I}.ONNX")
        );
        assert_eq!(tags["kind"], "model");
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
        let m = b.metadata(Some("\"0x1\""));
        assert_eq!(m[SOURCE_ETAG_KEY], "\"0x1\"");
        assert!(!b.metadata(None).contains_key(SOURCE_ETAG_KEY));
    }

    #[test]
    fn sas_sources_are_named_like_backups_and_recorded_without_their_sas() {
        let (p, i) = ids();
        let url = Url::parse(
            "https://irisprod.blob.core.windows.net:443/m-1/Model%20A.ONNX?sv=1&sig=SECRET",
        )
        .unwrap();
        let m = ExportedModel::from_sas(&url, p, i);
        assert_eq!(m.platform, Platform::Known(ExportPlatform::Onnx));
        assert_eq!(m.name, format!("{P} - {I}.ONNX"));
        assert_eq!(
            m.source(),
            "https://irisprod.blob.core.windows.net/m-1/Model%20A.ONNX"
        );
        let tags = m.tags(KIND_MODEL);
        assert_eq!(
            tags["source"],
            "irisprod.blob.core.windows.net/m-1/Model_20A.ONNX"
        );
        let everything = format!("{:?}{:?}", tags, m.metadata(Some("\"0x1\"")));
        assert!(
            !everything.contains("SECRET") && !everything.contains("sig"),
            "{everything}"
        );
        let hashed = Url::parse("https://a.blob.core.windows.net/c/9f8e7d.zip?sig=x").unwrap();
        let m = ExportedModel::from_sas(&hashed, p, i);
        assert!(m.platform.is_unknown());
        assert_eq!(m.extension, "zip");
        let label = m.platform.label();
        assert!(
            label.starts_with("unknown-")
                && label.len() == 16
                && label[8..].chars().all(|c| c.is_ascii_hexdigit()),
            "{label}"
        );
        // The same source on every delivery, whatever its SAS; another export, another label.
        let again = Url::parse("https://a.blob.core.windows.net/c/9f8e7d.zip?sig=y").unwrap();
        assert_eq!(ExportedModel::from_sas(&again, p, i).platform, m.platform);
        let other = Url::parse("https://a.blob.core.windows.net/c/0a1b2c.zip?sig=x").unwrap();
        assert_ne!(ExportedModel::from_sas(&other, p, i).platform, m.platform);
        assert_ne!(
            PathTemplate::parse("{projectId}/{iterationId}/{platform}")
                .unwrap()
                .render(&ExportedModel::from_sas(&other, p, i)),
            PathTemplate::parse("{projectId}/{iterationId}/{platform}")
                .unwrap()
                .render(&m)
        );
        let bare = Url::parse("https://a.blob.core.windows.net/c/model").unwrap();
        assert_eq!(ExportedModel::from_sas(&bare, p, i).extension, "zip");
    }
}
