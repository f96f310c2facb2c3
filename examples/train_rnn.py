"""A character-level RNN and its training loop: the recurrent weights are scaled up and the loop
never clips its gradients.

    gradhealth scan examples/train_rnn.py            # static (GH201) and runtime (GH130) findings together
    gradhealth scan examples/train_rnn.py --static-only
"""
import torch
import torch.nn as nn


class CharRNN(nn.Module):
    def __init__(self, vocab=64, hidden=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.rnn = nn.RNN(32, hidden, batch_first=True)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=1.8)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


def loss_fn(logits, tokens):
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1))


def train(model, batches, epochs=10):
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    for _ in range(epochs):
        for tokens in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(tokens), tokens)
            loss.backward()
            optimizer.step()


if __name__ == "__main__":
    data = [torch.randint(0, 64, (16, 100)) for _ in range(50)]
    train(CharRNN(), data)
