"""The face gallery: durable subjects and faces, and 1:N search over them."""
