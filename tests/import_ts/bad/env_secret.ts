export const orders = {
  steps: [
    {
      service: 'shop',
      operation: 'listOrders',
      params: { token: process.env.SHOP_TOKEN },
    },
  ],
};
