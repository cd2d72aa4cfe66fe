// The smallest useful Perry program: prints a greeting and the app's data folder.
const name: string = "Perry";
console.log(`Hello from ${name} on Windows!`);
