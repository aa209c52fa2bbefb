"""What tests share: factories for projects and events, real processes of the platform, and the
servers a test starts (PostgreSQL databases, an S3 server, a Kubernetes API emulator)."""
