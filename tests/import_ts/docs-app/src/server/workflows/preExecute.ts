import type { JobDefinition } from '@synthetiq/workflows';

export const preExecute: JobDefinition = {
  name: 'Post once per channel',
  description: "Post a greeting to a channel unless the channel has messages already: preExecute lists the channel's messages, and when it finds any the post is skipped and those messages are the step's rows",
  variables: {
    channel: {
      type: 'param',
      default: 'docs-greetings',
    },
  },
  steps: [
    {
      id: 'greet_once',
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{var.channel}}',
        text: 'Hello from the docs examples',
      },
      preExecute: {
        service: 'chat',
        operation: 'listChannelMessages',
        params: {
          channel: '{{var.channel}}',
        },
        dataPath: 'messages',
      },
      fieldMapping: {
        message_id: 'id',
      },
      outputTable: 'greeting',
      outputSchema: {
        message_id: 'VARCHAR',
        channel: 'VARCHAR',
        text: 'VARCHAR',
      },
    },
  ],
};


export const preExecutePerItem: JobDefinition = {
  name: 'Welcome each channel once',
  description: 'Post a welcome to every channel of a list unless that channel has messages already: preExecute runs once per item, so a channel that has a message (from an earlier run, or from a run killed half way) is not posted to again',
  steps: [
    {
      id: 'channels',
      sql: `SELECT * FROM (VALUES ('docs-team-a'), ('docs-team-b'), ('docs-team-c')) AS t(channel)`,
      outputTable: 'channels',
    },
    {
      id: 'welcome_each_once',
      service: 'chat',
      operation: 'postMessage',
      params: {
        channel: '{{item.channel}}',
        text: 'Welcome to {{item.channel}}',
      },
      forEach: {
        source: 'channels',
        itemKey: 'channel',
      },
      preExecute: {
        service: 'chat',
        operation: 'listChannelMessages',
        params: {
          channel: '{{item.channel}}',
        },
        dataPath: 'messages',
      },
      fieldMapping: {
        message_id: 'id',
        welcomed: '{{item.channel}}',
      },
      outputTable: 'welcomes',
      outputSchema: {
        message_id: 'VARCHAR',
        welcomed: 'VARCHAR',
        text: 'VARCHAR',
      },
    },
  ],
};

