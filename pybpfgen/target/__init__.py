"""What pybpfgen knows about the BPF target: program types, context layouts, helpers, map types, the kernel info
structs' layouts — and the record base class. The small shared base: import-free, used by the compiler and by the
loader (which imports nothing else of pybpfgen)."""
