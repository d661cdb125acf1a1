"""Answer generation: schema-conforming values from a transcript's text, malformations."""
