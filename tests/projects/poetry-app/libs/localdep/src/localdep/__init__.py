def greet() -> str:
    return "hello from a path dependency"
