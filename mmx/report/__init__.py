"""Tables and figures from run directories, with the paper's numbers beside ours."""
