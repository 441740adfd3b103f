"""Human evaluation: blinded rating sheets (`export`), responses into one table (`ingest`) and
their statistics (`analyze`), as in the paper's subjective test."""
