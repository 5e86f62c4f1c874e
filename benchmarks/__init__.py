"""Side-by-side speed and memory measurements of mmlab against its peers (never timed tests)."""
