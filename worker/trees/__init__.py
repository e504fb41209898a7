"""Git and the trees agents work in: mirrors, plain run trees, Mull's commits, and hostile-file reading."""
