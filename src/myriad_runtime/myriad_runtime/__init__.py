"""Process plumbing shared by every Myriad node: run one or several nodes in one executor with clean init/spin/shutdown (the rclcpp_components role)."""
