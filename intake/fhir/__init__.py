"""FHIR R4 building for the record system: the outbound transaction Bundle and
the canonical URLs of the profiles it claims (models from ``fhir.resources.R4B``)."""
