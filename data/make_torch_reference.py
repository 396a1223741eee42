"""Write data/torch_reference.npz: small random PyTorch LSTM and GRU
classifiers, one input each, and PyTorch's scores and input gradients.

tests/test_torch_reference.py checks our kernels against these numbers
without needing PyTorch; rerun this script (pip install torch) to remake them:

    python data/make_torch_reference.py
"""
import os

import numpy as np
import torch

E, D, C, T = 7, 5, 4, 9
HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    arrays = {}
    case = 0
    for cell in ("LSTM", "GRU"):
        for n_layers in (1, 2, 3):
            for bidirectional in (True, False):
                torch.manual_seed(1000 + case)
                rnn = getattr(torch.nn, cell)(E, D, num_layers=n_layers,
                                              bidirectional=bidirectional).double()
                n_dir = 2 if bidirectional else 1
                head = torch.nn.Linear(n_dir * D, C).double()
                x = torch.randn(T, E, dtype=torch.float64, requires_grad=True)
                _, h_n = rnn(x[:, None])
                if cell == "LSTM":
                    h_n = h_n[0]
                scores = head(torch.cat([h_n[-n_dir + k, 0] for k in range(n_dir)]))
                target = int(scores.argmax())
                scores[target].backward()
                out = {"cell": np.array(cell.lower()), "n_layers": np.array(n_layers),
                       "bidirectional": np.array(bidirectional), "x": x.detach().numpy(),
                       "scores": scores.detach().numpy(), "target": np.array(target),
                       "gradient": x.grad.numpy(),
                       "head_weight": head.weight.detach().numpy(),
                       "head_bias": head.bias.detach().numpy()}
                for name, p in rnn.named_parameters():
                    out[name] = p.detach().numpy()
                arrays.update({f"c{case}__{k}": v for k, v in out.items()})
                case += 1
    arrays["n_cases"] = np.array(case)
    np.savez_compressed(os.path.join(HERE, "torch_reference.npz"), **arrays)


if __name__ == "__main__":
    main()
