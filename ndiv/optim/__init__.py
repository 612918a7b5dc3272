"""ndiv.optim: optimizers, lr schedulers and gradient clipping with torch.optim's semantics.

    opt = ndiv.optim.AdamW(model.parameters(), lr=1e-3)
    sched = ndiv.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=1000)
    for batch in batches:
        loss = model.loss(batch); loss.backward()
        ndiv.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(); sched.step()
"""
from ndiv.optim import lr_scheduler
from ndiv.optim.adagrad import Adagrad
from ndiv.optim.adam import Adam, AdamW
from ndiv.optim.clip import clip_grad_norm_, clip_grad_value_
from ndiv.optim.optimizer import Optimizer
from ndiv.optim.rmsprop import RMSprop
from ndiv.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler",
           "clip_grad_norm_", "clip_grad_value_"]
