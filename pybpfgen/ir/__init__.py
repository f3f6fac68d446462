"""The typed intermediate representation between the Python ``ast`` and LLVM IR."""
