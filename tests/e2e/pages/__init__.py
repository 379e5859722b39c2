"""Page objects: what a user sees and does, named by intent."""
