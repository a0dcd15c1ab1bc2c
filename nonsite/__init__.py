"""nonsite: camera and drone frames -> detections -> rule checks -> evidence packs -> officer review."""
