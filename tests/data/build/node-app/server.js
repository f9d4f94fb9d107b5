const http = require("http");
const ms = require("ms");

http
  .createServer((req, res) => res.end(`node ok ${ms(60000)}\n`))
  .listen(Number(process.env.PORT));
