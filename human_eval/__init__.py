"""Human evaluation: blinded rating sheets, response ingest and analysis (issue 8; not built yet)."""
