"""What pybpfgen knows about the BPF target: program types, context layouts, helpers, map types."""
