"""What a training file says, read once and shared by every static rule: names and imports
(``names``), calls and assignments with their scopes (``facts``), training-loop events
(``events``), node positions, layer stacks and forward depth, AMP usage, optimizer
constructors, the model's risk and how tensors are used as weights. Nothing here reports."""
