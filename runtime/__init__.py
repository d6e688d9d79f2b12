"""Operations side of the face API: weights, the embedded Triton server, serving.

Nothing here is imported by the HTTP frontend; it prepares and runs the
processes the frontend talks to.
"""
