#!/usr/bin/env node
// Runs the benchmark suites listed below and writes their reports to bench/README.md sections.
// Suites are added with the components they measure (journal, server, client, runtime).
const suites = []
if (suites.length === 0) {
  console.log("bench: no benchmark suites yet; they land with the Khala journal, server and client.")
}
