/// @brief Precompiled header shared by every test executable (build speed only).
#pragma once
#include <QtTest/QtTest>
#include <torch/torch.h>
