// Fails while the client imports it: an init error.
throw new Error("broken at import");
export const handler = async () => "never";
