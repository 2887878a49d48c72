"""Client-side tools: the load generator, ``facepipe bench``, accuracy evaluation and plots."""
