"""Human evaluation: blinded rating sheets, response ingest, analysis (issue 8; not built yet)."""
