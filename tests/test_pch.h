/// @brief Precompiled header shared by every test executable (build speed only).
#pragma once
// LibTorch first: Qt's `slots` keyword macro breaks LibTorch's IValue headers if it comes earlier.
#include <torch/torch.h>
#include <QtTest/QtTest>
