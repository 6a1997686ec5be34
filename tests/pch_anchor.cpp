// @brief Anchor translation unit that owns the tests precompiled header.
