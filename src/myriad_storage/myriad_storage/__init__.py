"""Data logger and storage: MongoDB documents, GridFS images, campaigns and work-item leases."""
