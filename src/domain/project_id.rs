//! A Custom Vision project's id.

super::guid::guid_newtype!(
    /// A project id: a validated GUID, the first segment of every model path.
    ProjectId,
    "projectId"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    use crate::domain::examples::PROJECT as P;

    #[test]
    fn only_the_hyphenated_form_parses() {
        assert!(ProjectId::parse(&P.replace('-', "")).is_err());
        assert!(ProjectId::parse(&format!("{{{P}}}")).is_err());
        assert!(ProjectId::parse(&format!("urn:uuid:{P}")).is_err());
        assert_eq!(ProjectId::parse(P).unwrap().to_string(), P);
    }

    #[test]
    fn ids_are_shown_lower_case() {
        let id = ProjectId::parse(&P.to_uppercase()).unwrap();
        assert_eq!(id.to_string(), P);
    }

    #[test]
    fn a_bad_id_is_named_and_quoted_within_bounds() {
        assert_eq!(
            ProjectId::parse("../../etc"),
            Err(DomainError::BadGuid {
                field: "projectId",
                value: "../../etc".into()
            })
        );
        let long = ProjectId::parse(&"x".repeat(10_000))
            .unwrap_err()
            .to_string();
        assert!(long.len() < 120, "{long}");
    }
}
