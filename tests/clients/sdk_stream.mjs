// Streams one prediction with the real flowise-sdk npm package and prints each event as a JSON line.
// flowise-sdk is CommonJS: on Node 20 an .mjs file must take the default export.
import sdk from 'flowise-sdk';

const { FlowiseClient } = sdk;
const [baseUrl, chatflowId, question, streaming, apiKey] = process.argv.slice(2);

const client = new FlowiseClient(apiKey ? { baseUrl, apiKey } : { baseUrl });
const result = await client.createPrediction({ chatflowId, question, streaming: streaming === 'true' });
if (streaming === 'true') {
  for await (const chunk of result) {
    console.log(JSON.stringify(chunk));
  }
} else {
  console.log(JSON.stringify(result));
}
