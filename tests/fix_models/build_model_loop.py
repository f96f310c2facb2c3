"""build_model() stacks default-initialised Linear+ReLU pairs in a loop."""
import torch.nn as nn


def build_model(width=128, depth=12):
    layers = []
    for _ in range(depth):
        # one hidden block
        linear = nn.Linear(width, width)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))
