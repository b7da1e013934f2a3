print("session-node")
