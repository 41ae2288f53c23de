//! A Custom Vision iteration's id.

super::guid::guid_newtype!(
    /// An iteration id: a validated GUID, one trained model of a project.
    IterationId,
    "iterationId"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    #[test]
    fn a_bad_id_names_its_field() {
        let i = crate::domain::examples::ITERATION;
        assert_eq!(IterationId::parse(i).unwrap().to_string(), i);
        assert_eq!(
            IterationId::parse("x"),
            Err(DomainError::BadGuid {
                field: "iterationId",
                value: "x".into()
            })
        );
    }
}
