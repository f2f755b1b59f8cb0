"""Developer and CI tooling: throwaway PostgreSQL and Chroma servers on loopback (`services`) and the
whole local topology (`stack`). Not part of the product; the product never imports it."""
